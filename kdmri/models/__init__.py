"""Networks: the data-consistency layer, the DC-CNN teacher/student, VDSR for super-resolution."""

from kdmri.models.dccnn import (
    DCCNN,
    STUDENT,
    TEACHER,
    ConvBlock,
    DataConsistency,
    DCCNNConfig,
    ReconOutput,
    build_dccnn,
    count_parameters,
)
from kdmri.models.vdsr import VDSR, VDSR_DEFAULT_PAIRS, VDSR_STUDENT, VDSR_TEACHER, VDSRConfig, build_vdsr

__all__ = [
    "VDSR",
    "VDSR_DEFAULT_PAIRS",
    "VDSR_STUDENT",
    "VDSR_TEACHER",
    "VDSRConfig",
    "build_vdsr",
    "DCCNN",
    "STUDENT",
    "TEACHER",
    "ConvBlock",
    "DCCNNConfig",
    "DataConsistency",
    "ReconOutput",
    "build_dccnn",
    "count_parameters",
]
