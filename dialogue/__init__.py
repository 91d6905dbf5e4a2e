"""Policy side of Parley: models, chat formatting, data, SFT, generation and the CLI."""

__version__ = "0.1.0"
