"""Distillation losses, all in one import: the registered feature losses and the imitation loss.

Each method lives in its own module (attention, fitnet, relational, fsp, imitation) and
registers itself in :mod:`kdmri.distill.registry`; importing this module loads them all.

Feature losses
--------------
Models return their intermediate activations as a dict ``name -> tensor (B, C, H, W)``,
e.g. ``features["cascade1.conv3"]`` (see :mod:`kdmri.models.dccnn`). A feature loss is
configured with the layer ``pairs`` it compares, ``[(student_name, teacher_name), ...]``,
and is called as ``loss(student_feats, teacher_feats)``; it returns a scalar tensor, the
**mean over its pairs** of the per-pair loss (papers that sum over layers differ from this
by the constant number of pairs). Teacher features are detached: they are targets.

Losses are registered by name in :data:`FEATURE_LOSSES` and built with
:func:`build_feature_loss`:

==============  ===========================================================  ==========
name            method                                                       options
==============  ===========================================================  ==========
``at_kdmri``    KD-MRI attention transfer (Murugesan et al. 2020), L1         ``mode``
``at``          attention transfer (Zagoruyko & Komodakis 2017), squared     ``p``
``fitnet``      FitNets hints (Romero et al. 2015), 1x1-conv regressor       channels
``sp``          similarity preserving (Tung & Mori 2019)                     --
``cc``          correlation congruence (Peng et al. 2019)                    kernel...
``fsp``         flow of solution procedure (Yim et al. 2017)                 --
==============  ===========================================================  ==========

``fitnet`` owns trainable parameters (its regressors) when channel counts differ: give
``loss.parameters()`` to the optimiser together with the student's.

Imitation loss
--------------
:func:`imitation_loss` is KD-MRI's output-level term ``L1(student_out, teacher_out)``,
with the reference code's division by the element count available as a named reduction.
"""

from __future__ import annotations

from kdmri.distill.attention import (
    ATTENTION_MODES,
    AttentionKDMRILoss,
    AttentionTransferLoss,
    attention_map,
)
from kdmri.distill.fitnet import FitNetLoss
from kdmri.distill.fsp import FSPLoss, default_fsp_pairs
from kdmri.distill.imitation import IMITATION_REDUCTIONS, imitation_loss
from kdmri.distill.registry import (
    FEATURE_LOSSES,
    FeatureDict,
    FeatureLoss,
    FSPPair,
    LayerPair,
    MissingFeatureError,
    build_feature_loss,
    feature_loss_from_config,
    feature_probe,
    register_feature_loss,
)
from kdmri.distill.relational import CC_KERNELS, CorrelationCongruenceLoss, SimilarityPreservingLoss
from kdmri.models.dccnn import DCCNN

#: KD-MRI's layer pairs (student conv2 <-> teacher conv3 per cascade), declared by the DC-CNN.
default_pairs = DCCNN.default_feature_pairs

__all__ = [
    "ATTENTION_MODES", "AttentionKDMRILoss", "AttentionTransferLoss", "attention_map", "FitNetLoss",
    "FSPLoss", "default_fsp_pairs", "IMITATION_REDUCTIONS", "imitation_loss", "FEATURE_LOSSES",
    "FeatureDict", "FeatureLoss", "FSPPair", "LayerPair", "MissingFeatureError", "build_feature_loss",
    "feature_loss_from_config", "feature_probe", "register_feature_loss", "CC_KERNELS",
    "CorrelationCongruenceLoss", "SimilarityPreservingLoss", "default_pairs",
]
