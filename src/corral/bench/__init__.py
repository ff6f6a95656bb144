"""Load generation against any OpenAI-compatible endpoint (`corral bench`)."""
