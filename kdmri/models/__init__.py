"""Networks: the data-consistency layer and the DC-CNN teacher/student."""

from .dccnn import (
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

__all__ = [
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
