"""The dataset registry: one :class:`DatasetSpec` per dataset, registered by its own module.

Every dataset is one file in :mod:`kdmri.datasets` (``acdc.py``, ``mrbrains.py``,
``fastmri_knee.py``, ``calgary.py``, ``demo.py``) that builds a :class:`DatasetSpec` and
calls :func:`register_dataset` at import time; the package imports every module it holds,
so a new dataset is one new file there (or any module that calls :func:`register_dataset`
before :func:`kdmri.datasets.prepare` runs). The conversion driver, the example writer and
the reports look datasets up here by name, never by ``if`` chains.

Mask sizes live one layer lower, in :data:`kdmri.physics.masks.DATASET_SHAPES`;
:func:`register_dataset` checks that a known name keeps its mask size and records the size
of a new one, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kdmri.errors import ConfigError
from kdmri.physics.masks import DATASET_SHAPES, register_mask_shape, unregister_mask_spec
from kdmri.registry import Registry


@dataclass(frozen=True)
class DatasetSpec:
    """Everything kdmri knows about one dataset.

    Attributes:
        name: the key used in ``us_masks/<name>/``, ``params/<name>_<acc>.yaml`` and
            ``datasets/<name>/``.
        shape: reference slice size ``(H, W)`` (the size of its masks).
        label: name in the paper's tables (``Cardiac``, ``Brain``, ``Knee``).
        title: one line naming the source (CLI help, docs).
        discover: ``discover(src: Path, options: PrepareOptions) -> list[SourceVolume]``,
            the converter: finds the volumes of a download and how to load each one;
            ``None`` for a dataset that ``prepare`` does not convert (the demo).
        write_example: ``write_example(folder: Path, n_subjects: int, n_slices: int)``
            writes a tiny stand-in in the download's real on-disk format (tests, docs).
        official_split: ``{download folder name: 'train' | 'validation'}`` when the
            download has its own split, else ``None`` (``--split official`` is then an error).
        check_layout: ``check_layout(native (H, W, slices), target (H, W)) -> str | None``:
            a description of why the native shape cannot be the dataset's real layout (the
            conversion stops unless ``--fit crop-pad`` is given), or ``None`` when it can.
        resolve_options: ``resolve_options(options) -> options``: fills dataset-specific
            defaults (MRBrainS's contrast) before anything else reads them.
        build: ``build(out: Path | None) -> Path`` for a dataset kdmri makes itself (the
            demo) instead of converting a download.
        notes: free text for the docs (what a slice is, what is dropped...).
        description: what the data is, for a model card's "Data" section; default
            (:meth:`describe`): the title and the size.
        limits: a caveat of this data for a model card's "Intended use and limits" (the
            demo: one averaged template brain), or ``""``.
        approx_slices: ``(training slices, validation slices, how counted)`` of the full
            download as kdmri converts it: the cost plan's estimate where the dataset has not
            been prepared (no ``manifest.json``); ``None``: unknown.
        sr_keep: the central k-space block of the papers' super-resolution experiment on
            this dataset (KD-MRI: 64 of 256 on Calgary-Campinas; the demo keeps the same
            fraction, 24 of 96), or ``None`` where no paper ran super-resolution
            (:func:`kdmri.data.sr.sr_enabled`).
        sr_only: the papers use this dataset only for super-resolution (no reconstruction
            result, no reference mask): notebook 01's mask table leaves it out.
    """

    name: str
    shape: tuple[int, int]
    label: str
    title: str
    discover: Callable | None = None
    write_example: Callable[[Path, int, int], None] | None = None
    official_split: Mapping[str, str] | None = None
    check_layout: Callable[[tuple[int, ...], tuple[int, int]], str | None] | None = None
    resolve_options: Callable | None = None
    build: Callable | None = None
    notes: str = ""
    description: str = ""
    limits: str = ""
    approx_slices: tuple[int, int, str] | None = None
    sr_keep: int | None = None
    sr_only: bool = False
    module: str = field(default="", compare=False)

    def describe(self) -> str:
        """What the data is, in a phrase (:attr:`description`, else title and size)."""
        return self.description or f"{self.title}, {self.shape[0]} x {self.shape[1]}"

    @property
    def convertible(self) -> bool:
        """True when ``python -m kdmri prepare`` can convert this dataset's download."""
        return self.discover is not None


#: Every dataset by name; importing :mod:`kdmri.datasets` (or any module in it) fills it.
DATASETS: Registry[DatasetSpec] = Registry(
    "dataset", hint=" (a new dataset is one module in kdmri/datasets/ calling register_dataset; "
                    "see docs/DATASETS.md)")
_ADDED_MASK_SHAPES: set[str] = set()


def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to the registry (a dataset module calls this at import); returns it.

    Raises:
        ConfigError: the name is taken by another spec (unless ``replace``), or the shape
            differs from the dataset's mask shape in :data:`kdmri.physics.masks.DATASET_SHAPES`.
    """
    if not spec.name or not spec.name.replace("_", "").isalnum():
        raise ConfigError(f"dataset name {spec.name!r}: expected letters, digits and _")
    if len(spec.shape) != 2 or min(spec.shape) < 1:
        raise ConfigError(f"dataset {spec.name!r}: shape {spec.shape} is not (H, W)")
    old = DATASETS.get(spec.name)
    if old is not None and not replace and old.module != spec.module:
        raise ConfigError(f"dataset {spec.name!r} is already registered by {old.module or '?'}; "
                          "choose another name")
    new_shape = spec.name not in DATASET_SHAPES
    try:
        register_mask_shape(spec.name, spec.shape)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if new_shape:
        _ADDED_MASK_SHAPES.add(spec.name)
    return DATASETS.add(spec.name, spec, replace=True)


def unregister_dataset(name: str) -> None:
    """Remove ``name`` (and the mask size its registration added); tests use it to clean up."""
    DATASETS.remove(name)
    if name in _ADDED_MASK_SHAPES:
        _ADDED_MASK_SHAPES.discard(name)
        unregister_mask_spec(name)


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered as ``name``; :class:`ConfigError` listing the known names."""
    return DATASETS.lookup(name)


def dataset_names(convertible: bool = False) -> list[str]:
    """Sorted registered names (only those ``prepare`` converts when ``convertible``)."""
    return sorted(n for n, s in DATASETS.items() if s.convertible or not convertible)


def paper_label(name: str) -> str:
    """The paper's name for ``name`` (``mrbrain -> Brain``); unknown names are capitalised."""
    spec = DATASETS.get(name)
    return spec.label if spec is not None else name.capitalize()


def sr_settings() -> dict[str, int]:
    """``{dataset: sr_keep}`` of every dataset a paper (or the demo) ran super-resolution on."""
    return {name: spec.sr_keep for name, spec in sorted(DATASETS.items()) if spec.sr_keep}
