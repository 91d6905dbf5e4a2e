"""Errors a user can act on; the CLI prints them as one line instead of a traceback."""


class ParleyError(Exception):
    """Base class for errors that carry a message meant for the user."""


class ConfigError(ParleyError):
    """A recipe or an override names an unknown key or holds a value of the wrong type."""


class ModelNotFoundError(ParleyError):
    """A model name is neither bundled, nor a local directory, nor reachable on the hub."""


class DataError(ParleyError):
    """A dataset file is missing or holds rows that cannot be used."""


class UpstreamMissingError(ParleyError):
    """A stage ran before the stages whose artifacts it reads (``parley pipeline --only evaluate`` on a new run)."""
