"""Wire models in OpenAI's shapes: the only place they are defined."""
