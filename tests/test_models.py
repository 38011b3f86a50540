import pytest
import torch

from kdmri.models import DCCNN, STUDENT, TEACHER, DCCNNConfig, build_dccnn, count_parameters
from kdmri.physics.fft import fft2
from kdmri.physics.operators import data_consistency


def _batch(b=2, h=16, w=12, device="cpu"):
    target = torch.rand(b, 1, h, w, device=device)
    return target, fft2(target.to(torch.complex64))


def _expected_parameters(config) -> int:
    """3x3 convolutions with bias per cascade: in -> C, (n_convs - 2) x C -> C, C -> in."""
    c, i = config.channels, config.in_channels
    per_cascade = (i * c * 9 + c) + (config.n_convs - 2) * (c * c * 9 + c) + (c * i * 9 + i)
    return config.n_cascades * per_cascade


def test_parameter_counts():
    teacher, student = build_dccnn("teacher"), build_dccnn("student")
    n_teacher, n_student = count_parameters(teacher), count_parameters(student)
    assert n_teacher == _expected_parameters(teacher.config) == 141_765
    assert n_student == _expected_parameters(student.config) == 49_285
    assert n_teacher == sum(p.numel() for p in teacher.parameters() if p.requires_grad)
    assert round(1 - n_student / n_teacher, 3) == 0.652  # the paper's "65 % fewer"
    small = DCCNN(DCCNNConfig(n_cascades=2, n_convs=4, channels=8))
    assert count_parameters(small) == _expected_parameters(small.config)


def test_dc_mask_of_ones_returns_measured_image(device):
    target, k = _batch(device=device)
    x = torch.randn_like(target)
    out = data_consistency(x, k, torch.ones(16, 12, device=device))
    assert torch.allclose(out, target, atol=1e-5)


def test_dc_mask_of_zeros_returns_real_part_of_cnn_output(device):
    target, k = _batch(device=device)
    x = torch.randn_like(target)
    out = data_consistency(x, k, torch.zeros(16, 12, device=device))
    assert torch.allclose(out, x, atol=1e-5)


def test_dc_is_idempotent_and_per_sample_masks(device):
    target, k = _batch(b=2, device=device)
    # Taking the real part keeps DC idempotent for masks with m(f) == m(-f) (as Cartesian
    # line masks symmetric about DC are); build such masks from random ones.
    r = (torch.rand(2, 1, 16, 12, device=device) > 0.5).float()
    mirrored = torch.roll(torch.flip(r, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    masks = torch.maximum(r, mirrored)
    x = torch.randn_like(target)
    once = data_consistency(x, k * masks, masks)
    assert torch.allclose(data_consistency(once, k * masks, masks), once, atol=1e-5)
    # per-sample: each item equals the single-sample computation with its own mask
    for i in range(2):
        single = data_consistency(x[i : i + 1], (k * masks)[i : i + 1], masks[i, 0])
        assert torch.allclose(once[i : i + 1], single, atol=1e-6)


def test_dc_errors():
    target, k = _batch()
    with pytest.raises(ValueError, match="mask"):
        data_consistency(target, k, torch.ones(5, 5))
    with pytest.raises(TypeError, match="complex"):
        data_consistency(target, k.real, torch.ones(16, 12))


@pytest.mark.parametrize("role,config", [("teacher", TEACHER), ("student", STUDENT)])
def test_forward_shapes_640x368(role, config):
    model = build_dccnn(role)
    target, k = _batch(b=1, h=640, w=368)
    mask = torch.zeros(640, 368)
    mask[:, :46] = 1
    with torch.no_grad():
        out = model(target, k * mask, mask)
    assert out.image.shape == (1, 1, 640, 368)
    assert len(out.cascades) == 5
    assert set(out.features) == set(model.feature_names())
    assert out.features["cascade5.conv2"].shape == (1, 32, 640, 368)
    assert len(out.features) == config.n_cascades * (config.n_convs + 1)  # convs + "out"
    last = f"cascade5.conv{config.n_convs}"
    assert out.features["cascade5.out"] is out.features[last]  # the CNN output before DC
    with torch.no_grad():
        assert model(target, k * mask, mask, return_features=False).features == {}


def test_cascade_count_and_config():
    from kdmri.models import DCCNNConfig

    m = DCCNN(DCCNNConfig(n_cascades=2, n_convs=4, channels=8))
    assert len(m.cascades) == 2 and len(m.cascades[0].convs) == 4
    with pytest.raises(ValueError, match="role"):
        build_dccnn("professor")
