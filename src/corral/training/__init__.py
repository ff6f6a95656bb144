"""LoRA fine-tuning (PEFT on transformers) and GGUF adapter export; run by the worker."""
