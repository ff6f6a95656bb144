"""The catalog: model specs (models.yaml), aliases, lifecycle, loaded models, pulls."""
