import numpy as np
import pytest
import torch

from kdmri.physics import fft


@pytest.mark.parametrize("shape", [(8, 8), (7, 10), (2, 3, 16, 9)])
def test_matches_numpy_and_round_trips(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(fft.fft2(t).numpy(), np.fft.fft2(x, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(fft.fft2(x), np.fft.fft2(x, norm="ortho"), atol=1e-12)
    centred = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"),
                              axes=(-2, -1))
    np.testing.assert_allclose(fft.fft2c(t).numpy(), centred, atol=1e-12)
    np.testing.assert_allclose(fft.ifft2(fft.fft2(t)).numpy(), x, atol=1e-12)
    np.testing.assert_allclose(fft.ifft2c(fft.fft2c(t)).numpy(), x, atol=1e-12)
    np.testing.assert_allclose(fft.ifft2c(fft.fft2c(x)), x, atol=1e-12)


def test_parseval_and_dc_position():
    x = torch.rand(1, 1, 12, 10, dtype=torch.float64)
    k = fft.fft2(x)
    assert torch.allclose((x**2).sum(), (k.abs() ** 2).sum())
    # unshifted: DC at [0, 0]; centred: DC at [H//2, W//2]
    dc = x.sum() / np.sqrt(120)
    assert torch.allclose(k[..., 0, 0].real, dc)
    assert torch.allclose(fft.fft2c(x)[..., 6, 5].real, dc)


def test_complex_channel_round_trip():
    z = torch.randn(2, 3, 5, 4, dtype=torch.complex64)
    two = fft.complex_to_channels(z)
    assert two.shape == (2, 6, 5, 4)
    assert torch.equal(two[:, 0], z[:, 0].real) and torch.equal(two[:, 1], z[:, 0].imag)
    assert torch.equal(fft.channels_to_complex(two), z)
    with pytest.raises(TypeError):
        fft.complex_to_channels(z.real)
    with pytest.raises(ValueError):
        fft.channels_to_complex(torch.zeros(1, 3, 2, 2))


def test_zero_filled_full_mask_is_identity():
    x = np.random.default_rng(1).random((6, 5))
    assert np.allclose(fft.zero_filled(fft.undersample(x, np.ones((6, 5)))), x)
