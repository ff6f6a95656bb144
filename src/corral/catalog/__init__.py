"""The shipped model catalog (models.yaml)."""
