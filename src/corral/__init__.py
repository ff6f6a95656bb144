"""corral: a self-hostable, OpenAI-compatible model API platform."""

__version__ = "0.1.0"
