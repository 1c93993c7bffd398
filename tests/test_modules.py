"""Modules and their generator-based initialisation (``_modules.py``)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from sklearn_betavae._modules import (
    ConvTranspose2d,
    Discriminator,
    UnsupportedInitError,
    _ConvTranspose2dFunction,
    build_initialized,
    build_module,
    build_vae_module,
    conv_channels,
    initialize_parameters,
)


def test_initialisation_follows_torchs_default_distributions():
    # Weights ~ U(-b, b) with b = sqrt(6 / ((1 + 5) fan_in)) (kaiming_uniform, a=sqrt(5)),
    # biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch's reset_parameters.
    layer = nn.Linear(400, 300)
    initialize_parameters(layer, torch.Generator().manual_seed(0))
    bound = math.sqrt(6 / (6 * 400))
    w = layer.weight.detach().numpy().ravel()
    assert stats.kstest(w, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3
    b = layer.bias.detach().numpy()
    assert np.abs(b).max() <= 1 / math.sqrt(400)
    assert stats.kstest(b, "uniform", args=(-1 / 20, 2 / 20)).pvalue > 1e-3


def test_build_initialized_leaves_the_global_rng_alone_and_follows_the_seed():
    # Building on the meta device and initialising from a generator draws nothing from
    # torch's global RNG; the same seed gives the same weights, another seed others.
    def factory():
        return build_vae_module(256, 3, None, (1, 16, 16))

    state = torch.get_rng_state()
    first = build_initialized(factory, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)
    second = build_initialized(factory, torch.Generator().manual_seed(1))
    other = build_initialized(factory, torch.Generator().manual_seed(2))
    for a, b, c in zip(first.parameters(), second.parameters(), other.parameters()):
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert a.device.type == "cpu" and torch.isfinite(a).all()


def test_unknown_parameters_are_refused():
    # A parameter outside Linear / convolution layers has no generator-based initialisation.
    class WithScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    with pytest.raises(UnsupportedInitError, match=r"parameters \[.scale.\]"):
        build_initialized(WithScale, torch.Generator().manual_seed(0))
    # ... and so is a module with buffers, which would be left uninitialised.
    with pytest.raises(TypeError, match="without buffers"):
        build_initialized(lambda: nn.BatchNorm1d(3), torch.Generator().manual_seed(0))


def test_discriminator_shape():
    # The discriminator maps codes to two logits through the given hidden layers.
    d = build_initialized(lambda: Discriminator(4, (16, 16)), torch.Generator().manual_seed(0))
    assert d(torch.zeros(5, 4)).shape == (5, 2)
    assert [m.out_features for m in d.net if isinstance(m, nn.Linear)] == [16, 16, 2]


class _WithNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 3)
        self.norm = nn.BatchNorm1d(3)
        self.scale = nn.Parameter(torch.randn(3))


def test_build_module_falls_back_to_a_seeded_global_rng_for_other_layers():
    # A module with its own parameters and buffers is built by its constructor, from torch's
    # global RNG seeded by the generator and restored afterwards: same seed, same weights.
    state = torch.get_rng_state()
    first = build_module(_WithNorm, torch.Generator().manual_seed(1))
    second = build_module(_WithNorm, torch.Generator().manual_seed(1))
    other = build_module(_WithNorm, torch.Generator().manual_seed(2))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.scale, second.scale) and not torch.equal(first.scale, other.scale)
    assert torch.equal(first.norm.running_var, torch.ones(3))  # buffers initialised, not empty


@pytest.mark.parametrize(
    "image_shape, n_convolutions, grid",
    [
        ((1, 16, 16), 4, (1, 1)),
        ((1, 32, 32), 4, (2, 2)),
        ((1, 48, 48), 4, (3, 3)),
        ((1, 64, 64), 5, (2, 2)),  # the literature's four would leave 4x4
        ((3, 96, 96), 5, (3, 3)),
        ((1, 128, 128), 6, (2, 2)),
        ((1, 64, 32), 4, (4, 2)),  # the short side decides
        ((1, 80, 80), 4, (5, 5)),  # 5x5 does not halve evenly
    ],
)
def test_convolutional_stack_downsamples_to_a_small_grid(image_shape, n_convolutions, grid):
    # Counted on the built modules themselves: stride-2 convolutions in the encoder, the
    # shape of its last feature map on a real batch, and a decoder that mirrors it back
    # to the input's size.
    channels, height, width = image_shape
    assert len(conv_channels(image_shape)) == n_convolutions
    module = build_vae_module(channels * height * width, 3, None, image_shape)
    convs = [m for m in module.encoder.conv if isinstance(m, nn.Conv2d)]
    assert len(convs) == n_convolutions
    assert [m.out_channels for m in convs] == [32, 32, 64, 64] + [64] * (n_convolutions - 4)
    x = torch.rand(2, channels * height * width)
    features = module.encoder.conv[:-1](x.view(2, *image_shape))  # before Flatten
    assert features.shape == (2, 64, *grid)
    deconvs = [m for m in module.decoder.deconv if isinstance(m, nn.ConvTranspose2d)]
    assert len(deconvs) == n_convolutions and deconvs[-1].out_channels == channels
    mu, _ = module.encode(x)
    assert module.decode(mu).shape == x.shape


def _layer_pair(c_in, c_out, **kwargs):
    """The package's ``ConvTranspose2d`` and torch's, with the same weights."""
    torch.manual_seed(0)
    ours = ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, **kwargs)
    theirs = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _forward_backward(layer, x, grad, autocast):
    """Output and the gradients of ``<layer(x), grad>`` for x, weight and bias."""
    layer.zero_grad()
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = layer(x)
    (y.float() * grad).sum().backward()
    return y, [y.detach().float(), x.grad, layer.weight.grad, layer.bias.grad]


@pytest.mark.parametrize("c_out, kernel, stride, padding", [
    (2, (4, 4), [2, 2], [1, 1]),  # the built-in decoder's layers
    (1, (4, 4), [2, 2], [1, 1]),  # its last layer, one output channel
    (1, (3, 4), [1, 2], [0, 2]),  # other shapes on each axis
])
def test_transposed_convolution_backward_is_the_adjoint_of_a_convolution(
        c_out, kernel, stride, padding):
    # The custom function, checked in float64 against torch's own transposed
    # convolution and its autograd, and against finite differences.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(3, c_out, *kernel, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(c_out, dtype=torch.float64, generator=gen, requires_grad=True)
    args = (stride, padding, [1, 1])
    assert torch.autograd.gradcheck(
        lambda x, w, b: _ConvTranspose2dFunction.apply(x, w, b, *args), (x, w, b))
    y = _ConvTranspose2dFunction.apply(x, w, b, *args)
    expected = nn.functional.conv_transpose2d(x, w, b, stride, padding)
    torch.testing.assert_close(y, expected)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=gen)
    ours = torch.autograd.grad((y * grad).sum(), (x, w, b))
    reference = torch.autograd.grad((expected * grad).sum(), (x, w, b))
    for a, r in zip(ours, reference):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("c_out", [8, 1])
@pytest.mark.parametrize("channels_last", [False, True])
def test_transposed_convolution_trains_in_bf16_like_torchs(channels_last, c_out):
    # Under bf16 autocast on the CPU the layer takes its own backward (the grad_fn
    # says so) and gives torch's layer's output, dtype and gradients (to bf16's
    # precision), in both memory formats, with several output channels and one (the
    # last layer of a grey-level decoder); the gradients reach the float32 weights.
    ours, theirs = _layer_pair(32, c_out)
    x = torch.randn(4, 32, 8, 8)
    if channels_last:
        ours, theirs = (m.to(memory_format=torch.channels_last) for m in (ours, theirs))
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(4, c_out, 16, 16)
    y, got = _forward_backward(ours, x, grad, autocast=True)
    y_ref, expected = _forward_backward(theirs, x, grad, autocast=True)
    assert type(y.grad_fn).__name__ == "_ConvTranspose2dFunctionBackward"
    assert type(y_ref.grad_fn).__name__ != type(y.grad_fn).__name__
    assert y.dtype == y_ref.dtype == torch.bfloat16
    assert ours.weight.grad.dtype == torch.float32
    for a, e in zip(got, expected):
        torch.testing.assert_close(a, e, rtol=2e-2, atol=2e-2 * float(e.abs().max()))


def test_transposed_convolution_is_torchs_outside_bf16_training():
    # float32 training, and bf16 inference: torch's own computation, bit for bit.
    ours, theirs = _layer_pair(6, 3)
    x, grad = torch.randn(2, 6, 5, 5), torch.randn(2, 3, 10, 10)
    y, got = _forward_backward(ours, x, grad, autocast=False)
    _, expected = _forward_backward(theirs, x, grad, autocast=False)
    assert type(y.grad_fn).__name__ == "ConvolutionBackward0"
    for a, e in zip(got, expected):
        assert torch.equal(a, e)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(ours(x), theirs(x))


def test_built_in_decoder_trains_in_bf16_as_with_torchs_layers():
    # The whole decoder, a few Adam steps under bf16 autocast: the package's layers
    # and torch's give the same losses (to a small tolerance; the same kernels run).
    losses = {}
    x = (torch.rand(16, 32 * 32, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    for kind in ("ours", "torch"):
        torch.manual_seed(0)
        module = build_vae_module(32 * 32, 3, None, (1, 32, 32))
        if kind == "torch":
            for i, layer in enumerate(module.decoder.deconv):
                if isinstance(layer, ConvTranspose2d):
                    plain = nn.ConvTranspose2d(layer.in_channels, layer.out_channels, 4, 2, 1)
                    plain.load_state_dict(layer.state_dict())
                    module.decoder.deconv[i] = plain
        optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
        losses[kind] = []
        for _ in range(5):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                mu, _ = module.encode(x)
                logits = module.decode(mu)
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[kind].append(loss.item())
    assert sum(isinstance(m, ConvTranspose2d) for m in module.modules()) == 0  # torch's run
    np.testing.assert_allclose(losses["ours"], losses["torch"], rtol=1e-3)
    assert losses["ours"][-1] < losses["ours"][0]
