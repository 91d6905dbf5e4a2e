"""OpenAI-compatible HTTP API (``/v1/models``, ``/v1/chat/completions``) over the same chat service as the UI."""
