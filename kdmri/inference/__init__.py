"""Using a trained network: reconstruct a user's scan or acquisition (:mod:`.reconstruct`) and
export a network for deployment (:mod:`.export`). Both choose the forward pass through the
model's task (:func:`kdmri.models.tasks.task_of`), never by the network's class, and sit at
the evaluation layer: they need models, data and physics, not the batch machinery."""
