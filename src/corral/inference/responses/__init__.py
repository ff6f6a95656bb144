"""The Responses and Conversations APIs, translated onto the generation core."""
