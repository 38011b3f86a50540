"""Evaluation: run a checkpoint over the validation set; reconstructions and reports."""
