"""Networks, each registered by kind (:mod:`kdmri.models.registry`): the DC-CNN
teacher/student (:mod:`~kdmri.models.dccnn`), VDSR for super-resolution
(:mod:`~kdmri.models.vdsr`) and the SFT-KD-Recon teacher (:mod:`~kdmri.models.sft`), built
from the shared blocks of :mod:`~kdmri.models.blocks`. Importing this package registers them."""

from kdmri.models.blocks import ConvBlock, DataConsistency, ReconOutput, cascade_step, count_parameters
from kdmri.models.dccnn import DCCNN, STUDENT, TEACHER, DCCNNConfig, build_dccnn
from kdmri.models.registry import MODELS, arch_of, build_from_arch, register_model
from kdmri.models.sft import SFTTeacher, init_student_from_sft
from kdmri.models.vdsr import VDSR, VDSR_DEFAULT_PAIRS, VDSR_STUDENT, VDSR_TEACHER, VDSRConfig, build_vdsr

__all__ = [
    "MODELS", "arch_of", "build_from_arch", "register_model",
    "ConvBlock", "DataConsistency", "ReconOutput", "cascade_step", "count_parameters",
    "DCCNN", "STUDENT", "TEACHER", "DCCNNConfig", "build_dccnn",
    "SFTTeacher", "init_student_from_sft",
    "VDSR", "VDSR_DEFAULT_PAIRS", "VDSR_STUDENT", "VDSR_TEACHER", "VDSRConfig", "build_vdsr",
]
