"""Evals: templates, graders and the per-item runner (no HTTP, no storage)."""
