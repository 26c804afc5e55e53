"""`dashrl export`: a run's model as a plain Hugging Face folder with a model card."""
