"""Distillation: feature-KD losses (registered by name), the imitation loss, objectives."""
