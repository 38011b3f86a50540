"""The frozen teacher's part of a feature stage, computed once per run.

A stage whose objective has a feature term runs the frozen teacher on every training batch
for its features, although they never change (no data augmentation, frozen weights). When
the feature loss's teacher side is per sample (:meth:`~kdmri.distill.registry.FeatureLoss.
teacher_target`: KD-MRI's attention maps, or the features themselves),
:func:`teacher_targets` computes, once, the teacher's output image and every pair's teacher
target for each training slice, **exactly as the training step would**: the same batches
(``strategy.batches``: device, channels-last input), the same batch size, under the same
autocast. The step then looks them up (:class:`~kdmri.distill.objective.CachedTeacher`)
instead of running the teacher. Validation batches always run the teacher.

Not cached (the teacher then runs every step, as before): random patches (the teacher on a
patch is not a crop of its output on the slice), targets that are not one tensor per pair
(FSP's layer pairs), and caches over ``limit`` bytes.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from kdmri.distill.objective import CachedTeacher
from kdmri.progress import progress_bar


@torch.no_grad()
def teacher_targets(runner, ds: Dataset, limit: int) -> CachedTeacher | None:
    """The teacher's image and feature-loss targets for every item of ``ds``, indexed by the
    item's ``index`` (``runner``: a :class:`~kdmri.training.engine.StageRunner` with its
    teacher and feature loss set up); ``None`` where it cannot or should not be cached."""
    if hasattr(ds, "full") or runner.feature_loss is None or runner.teacher is None:
        return None
    strategy, cfg = runner.strategy, runner.cfg
    n = len(ds)
    loader = DataLoader(strategy.shard(ds), batch_size=strategy.per_rank_batch(cfg.batch_size), shuffle=False)
    image: torch.Tensor | None = None
    targets: list[torch.Tensor] = []
    for batch in progress_bar(strategy.batches(loader), total=len(loader), desc="teacher features",
                              leave=False, enabled=cfg.progress and strategy.progress()):
        with strategy.autocast():
            out = runner._run("teacher", runner.teacher, batch, True)  # the step's own teacher pass
            found = runner.feature_loss.teacher_targets(out.features)
        if not all(isinstance(t, torch.Tensor) for t in found):
            return None
        if image is None:
            per_item = sum(t[0].numel() * t.element_size() for t in (out.image, *found))
            if n * per_item > limit:
                return None
            image = torch.zeros((n, *out.image.shape[1:]), dtype=out.image.dtype)
            targets = [torch.zeros((n, *t.shape[1:]), dtype=t.dtype) for t in found]
        index = batch["index"].cpu()
        image[index] = out.image.cpu()
        for buffer, t in zip(targets, found):
            buffer[index] = t.cpu()
    if image is None:
        return None
    # each process filled its share; the sum over processes fills them all
    return CachedTeacher(strategy.all_reduce_sum_(image), [strategy.all_reduce_sum_(t) for t in targets])


def lookup(cache: CachedTeacher, index: torch.Tensor, device: torch.device) -> CachedTeacher:
    """The cached teacher part of the batch of items ``index``, on ``device``."""
    index = index.cpu()
    return CachedTeacher(cache.image[index].to(device), [t[index].to(device) for t in cache.targets])
