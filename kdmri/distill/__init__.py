"""Distillation: feature-KD losses (registered by name), the imitation loss, objectives.

Importing this package, or any module in it (``kdmri.distill.registry`` included), imports
every built-in loss, so the loss registry is complete whatever is imported first."""

from kdmri.distill import attention, fitnet, fsp, relational  # noqa: F401  (register the losses)
