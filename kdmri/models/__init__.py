"""Networks: the data-consistency layer and the DC-CNN teacher/student."""

from .dccnn import (
    STUDENT,
    TEACHER,
    ConvBlock,
    DataConsistency,
    DCCNN,
    DCCNNConfig,
    ReconOutput,
    build_dccnn,
    count_parameters,
)

__all__ = [
    "STUDENT",
    "TEACHER",
    "ConvBlock",
    "DataConsistency",
    "DCCNN",
    "DCCNNConfig",
    "ReconOutput",
    "build_dccnn",
    "count_parameters",
]
