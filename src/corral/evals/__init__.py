"""Evals: definitions, templates, graders, the per-item runner, the service and its worker."""
