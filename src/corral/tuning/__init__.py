"""Fine-tuning: jobs, training data, the LoRA trainer, its worker process and GGUF export."""
