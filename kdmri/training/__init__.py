"""Training: stages described as data, recipes built from them, one engine with a strategy."""
