"""Anthropic's Messages API on the generation core."""
