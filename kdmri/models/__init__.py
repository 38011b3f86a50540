"""Networks, each registered by kind (:mod:`kdmri.models.registry`): the DC-CNN
teacher/student (:mod:`~kdmri.models.dccnn`), VDSR for super-resolution
(:mod:`~kdmri.models.vdsr`), the SFT-KD-Recon teacher (:mod:`~kdmri.models.sft`) and a
fastMRI-form U-Net (:mod:`~kdmri.models.unet`), built from the shared blocks of
:mod:`~kdmri.models.blocks`. Importing this package (or any module in it) registers them;
any other network is named by import path (:func:`build_network`) and its layers by module
path (:mod:`~kdmri.models.features`)."""

from kdmri.models.blocks import ConvBlock, DataConsistency, ReconOutput, cascade_step, count_parameters
from kdmri.models.dccnn import DCCNN, STUDENT, TEACHER, DCCNNConfig, build_dccnn
from kdmri.models.features import FeatureRecorder, network_inputs, resolve_layer
from kdmri.models.registry import MODELS, arch_of, build_from_arch, build_network, register_model
from kdmri.models.sft import SFTTeacher, init_student_from_sft
from kdmri.models.unet import UNet, UNetConfig
from kdmri.models.vdsr import VDSR, VDSR_DEFAULT_PAIRS, VDSR_STUDENT, VDSR_TEACHER, VDSRConfig, build_vdsr

__all__ = [
    "MODELS", "arch_of", "build_from_arch", "build_network", "register_model",
    "FeatureRecorder", "network_inputs", "resolve_layer", "UNet", "UNetConfig",
    "ConvBlock", "DataConsistency", "ReconOutput", "cascade_step", "count_parameters",
    "DCCNN", "STUDENT", "TEACHER", "DCCNNConfig", "build_dccnn",
    "SFTTeacher", "init_student_from_sft",
    "VDSR", "VDSR_DEFAULT_PAIRS", "VDSR_STUDENT", "VDSR_TEACHER", "VDSRConfig", "build_vdsr",
]
