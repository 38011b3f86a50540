"""Training: stages described as data, recipes built from them, one engine with a strategy."""

from kdmri.training.engine import train

__all__ = ["train"]
