"""Evaluation: run a checkpoint over the validation set; reconstructions and reports."""

from kdmri.evaluation.evaluate import evaluate

__all__ = ["evaluate"]
