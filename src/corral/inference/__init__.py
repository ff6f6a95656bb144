"""The generation core: chat, completions, embeddings, tools, reasoning, admission, telemetry."""
