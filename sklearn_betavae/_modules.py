"""torch ``nn.Module`` building blocks: encoders, decoders and a discriminator.

Only architecture lives here; objectives are in ``_losses`` and the training
loop in ``_net``. Encoders and decoders take optional conditions ``c``, extra
inputs concatenated to their dense layers: ``q(z | x, c)`` and ``p(x | z, c)``.
"""

import math
import threading

import torch
from torch import nn

# Custom modules that need torch's global RNG are built one thread at a time.
_GLOBAL_RNG_LOCK = threading.Lock()

# Higgins et al. (2017), Burgess et al. (2018), Locatello et al. (2019), Table 1:
# four 4x4 stride-2 convolutions, then a dense layer of 256 units.
CONV_CHANNELS = (32, 32, 64, 64)
CONV_DENSE_UNITS = (256,)
MLP_HIDDEN_LAYER_SIZES = (256, 256)
# Larger images get further 64-channel stride-2 convolutions while the last feature
# map is at least this on a side and halves evenly: it ends 2x2 at 32x32 and at 64x64
# (five convolutions there, where the literature's four leave 4x4). At 64x64 the
# fifth one takes the defaults from MIG 0.03 to about 0.25 at the same budget
# (docs/benchmarks.md, "Defaults").
_MAX_GRID = 4


def conv_channels(image_shape):
    """Output channels of each convolution of the built-in stack for ``image_shape``.

    ``CONV_CHANNELS``, then one more ``CONV_CHANNELS[-1]`` for each further halving
    of both sides that leaves the feature map at least ``_MAX_GRID // 2`` on a side.
    ``image_shape`` is ``(channels, height, width)``, sides multiples of 16.
    """
    _, height, width = image_shape
    channels = CONV_CHANNELS
    while (
        min(height, width) >> len(channels) >= _MAX_GRID
        and height % 2 ** (len(channels) + 1) == 0
        and width % 2 ** (len(channels) + 1) == 0
    ):
        channels += CONV_CHANNELS[-1:]
    return channels


def _conv_grid(image_shape, channels):
    """``(channels, height, width)`` of the last feature map of the stack ``channels``."""
    downsampling = 2 ** len(channels)
    return channels[-1], image_shape[1] // downsampling, image_shape[2] // downsampling


def _with_conditions(h, c):
    """``h`` with the conditions ``c`` (or nothing, for ``None``) concatenated as columns."""
    return h if c is None else torch.cat([h, c], dim=1)


def _mlp(sizes, activation=nn.ReLU):
    """Linear layers of ``sizes`` with ``activation`` between them (not after the last)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Fully connected encoder returning the posterior mean and log-variance."""

    def __init__(self, n_features, n_components, hidden_layer_sizes, n_conditions=0):
        super().__init__()
        self.net = _mlp((n_features + n_conditions, *hidden_layer_sizes, 2 * n_components))

    def forward(self, x, c=None):
        mu, logvar = self.net(_with_conditions(x, c)).chunk(2, dim=1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """Fully connected decoder returning logits or means of ``p(x | z)``."""

    def __init__(self, n_features, n_components, hidden_layer_sizes, n_conditions=0):
        super().__init__()
        self.net = _mlp((n_components + n_conditions, *reversed(hidden_layer_sizes), n_features))

    def forward(self, z, c=None):
        return self.net(_with_conditions(z, c))


class ConvEncoder(nn.Module):
    """Convolutional encoder of the disentanglement literature.

    ``x`` arrives flattened, ``(batch_size, channels * height * width)``;
    conditions join the flattened feature maps before the dense layers.
    """

    def __init__(self, image_shape, n_components, hidden_layer_sizes, n_conditions=0):
        super().__init__()
        self.image_shape = tuple(image_shape)
        conv = conv_channels(self.image_shape)
        layers = []
        for c_in, c_out in zip((self.image_shape[0], *conv[:-1]), conv):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers, nn.Flatten())
        n_flat = math.prod(_conv_grid(self.image_shape, conv))
        self.dense = _mlp((n_flat + n_conditions, *hidden_layer_sizes, 2 * n_components))

    def forward(self, x, c=None):
        images = x.view(x.shape[0], *self.image_shape)
        if self.conv[0].weight.is_contiguous(memory_format=torch.channels_last):
            images = images.contiguous(memory_format=torch.channels_last)
        mu, logvar = self.dense(_with_conditions(self.conv(images), c)).chunk(2, dim=1)
        return mu, logvar


class _ConvTranspose2dFunction(torch.autograd.Function):
    """``conv_transpose2d`` whose backward is written with the forward convolution.

    A transposed convolution is the adjoint of a convolution with the same weight:
    ``<conv_transpose2d(x, w), g> = <x, conv2d(g, w)>``. So its input gradient is
    ``conv2d(g, w)`` and its weight gradient is a convolution's weight gradient with
    ``g`` as the input and ``x`` as the output gradient: the forward convolution's
    kernels, where oneDNN's own backward of a transposed convolution in bfloat16 is
    slow on CPUs without AMX (forward and backward 1.0 to 1.7 times faster per layer
    of the 64x64 decoder on an AMD EPYC with AVX-512 BF16;
    ``benchmarks/bench_speed.py --only deconv``). Same values up to rounding; groups
    of 1 and no output padding (the built-in decoder's layers).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, dilation, bias is not None)
        return nn.functional.conv_transpose2d(x, weight, bias, stride, padding, 0, 1, dilation)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, has_bias = ctx.conv
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = nn.functional.conv2d(grad, weight, None, stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                x, grad, weight, None, stride, padding, dilation, False, [0, 0], 1,
                [False, True, False],
            )[1]
        if has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None, None


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that trains faster in bfloat16 on the CPU.

    The same layer (parameters, initialisation, outputs); when it trains on the CPU
    under bfloat16 autocast, its backward runs through
    :class:`_ConvTranspose2dFunction`. Everywhere else (float32, CUDA, inference,
    grouped or output-padded layers) it is ``nn.ConvTranspose2d`` itself, bit for bit.
    """

    def forward(self, input, output_size=None):
        device = input.device.type
        if (
            device != "cpu"
            or not torch.is_autocast_enabled(device)
            or torch.get_autocast_dtype(device) != torch.bfloat16
            or not torch.is_grad_enabled()
            or output_size is not None
            or self.groups != 1
            or any(self.output_padding)
            or self.padding_mode != "zeros"
        ):
            return super().forward(input, output_size)
        # What autocast does for conv_transpose2d: inputs cast to bfloat16, the cast
        # of the float32 weights part of the graph so their gradients reach them.
        weight = self.weight.to(torch.bfloat16)
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        with torch.autocast(device, enabled=False):
            return _ConvTranspose2dFunction.apply(
                input.to(torch.bfloat16), weight, bias,
                list(self.stride), list(self.padding), list(self.dilation),
            )


class ConvDecoder(nn.Module):
    """Transposed-convolution decoder mirroring :class:`ConvEncoder`."""

    def __init__(self, image_shape, n_components, hidden_layer_sizes, n_conditions=0):
        super().__init__()
        conv = conv_channels(image_shape)
        self.grid = _conv_grid(image_shape, conv)
        n_flat = math.prod(self.grid)
        self.dense = nn.Sequential(
            _mlp((n_components + n_conditions, *reversed(hidden_layer_sizes), n_flat)), nn.ReLU()
        )
        out_channels = (*reversed(conv[:-1]), image_shape[0])
        layers = []
        for i, (c_in, c_out) in enumerate(zip(reversed(conv), out_channels)):
            layers.append(ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if i < len(conv) - 1:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers, nn.Flatten())

    def forward(self, z, c=None):
        grid = self.dense(_with_conditions(z, c)).view(z.shape[0], *self.grid)
        if self.deconv[0].weight.is_contiguous(memory_format=torch.channels_last):
            grid = grid.contiguous(memory_format=torch.channels_last)
        return self.deconv(grid)


class ConditionedModule(nn.Module):
    """A module of one input (a custom encoder or decoder) given conditions as more columns.

    ``forward(x, c)`` is ``module(x)``, or ``module(cat([x, c], 1))`` with conditions.
    """

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x, c=None):
        return self.module(_with_conditions(x, c))


def _column_index(columns):
    """An index of ``columns`` (ints): a slice, a view, when they are contiguous and ascending."""
    columns = list(columns)
    if columns == list(range(columns[0], columns[-1] + 1)):
        return slice(columns[0], columns[-1] + 1)
    return columns


class VAEModule(nn.Module):
    """An encoder ``(x, c) -> (mu, logvar)`` and a decoder ``(z, c) -> logits or mean``.

    ``forward`` returns the posterior parameters of full rows; sampling and
    decoding are done by the training net so that their random numbers come
    from its generator. With ``condition_columns``, full rows hold data and
    conditions: :meth:`split` separates them, the encoder sees both
    (``q(z | x, c)``) and :meth:`decode` takes the conditions too
    (``p(x | z, c)``). The encoder may return the pair ``(mu, logvar)`` or one
    tensor of ``2 * n_components`` columns, means first (custom encoders).

    Parameters
    ----------
    encoder, decoder : torch.nn.Module
        Called as ``encoder(x, c)`` and ``decoder(z, c)`` (``c`` is ``None``
        without conditions).
    condition_columns : sequence of int, default=()
        Columns of a full row that are conditions, not data, in the order the
        encoder and the decoder take them.
    n_features : int or None, default=None
        Number of columns of a full row (needed with ``condition_columns``).
    """

    def __init__(self, encoder, decoder, *, condition_columns=(), n_features=None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.condition_columns = tuple(int(i) for i in condition_columns)
        if self.condition_columns:
            data = sorted(set(range(n_features)) - set(self.condition_columns))
            self._data_index = _column_index(data)
            self._condition_index = _column_index(self.condition_columns)

    def split(self, x):
        """``(data, conditions)`` columns of full rows; conditions are ``None`` without any."""
        if not self.condition_columns:
            return x, None
        return x[:, self._data_index], x[:, self._condition_index]

    def forward(self, x):
        return self.encode(*self.split(x))

    def encode(self, x, c=None):
        """Posterior parameters ``(mu, logvar)`` of data columns ``x`` under conditions ``c``."""
        out = self.encoder(x, c)
        if isinstance(out, (tuple, list)):
            return tuple(out)
        return tuple(out.chunk(2, dim=1))

    def decode(self, z, c=None):
        """Decoder output (logits or means) for codes ``z`` under conditions ``c``."""
        return self.decoder(z, c)


def build_encoder(n_features, n_components, hidden_layer_sizes, image_shape, n_conditions=0):
    """The built-in encoder: an MLP, or with ``image_shape`` the convolutional one.

    ``n_features`` counts the data columns, ``n_conditions`` the condition
    columns it also takes. ``hidden_layer_sizes=None`` means
    ``MLP_HIDDEN_LAYER_SIZES`` for an MLP and ``CONV_DENSE_UNITS`` after the
    convolutional stack.
    """
    if image_shape is None:
        sizes = MLP_HIDDEN_LAYER_SIZES if hidden_layer_sizes is None else hidden_layer_sizes
        return MLPEncoder(n_features, n_components, sizes, n_conditions)
    sizes = CONV_DENSE_UNITS if hidden_layer_sizes is None else hidden_layer_sizes
    return ConvEncoder(image_shape, n_components, sizes, n_conditions)


def build_decoder(n_features, n_components, hidden_layer_sizes, image_shape, n_conditions=0):
    """The built-in decoder mirroring :func:`build_encoder`."""
    if image_shape is None:
        sizes = MLP_HIDDEN_LAYER_SIZES if hidden_layer_sizes is None else hidden_layer_sizes
        return MLPDecoder(n_features, n_components, sizes, n_conditions)
    sizes = CONV_DENSE_UNITS if hidden_layer_sizes is None else hidden_layer_sizes
    return ConvDecoder(image_shape, n_components, sizes, n_conditions)


def build_vae_module(n_features, n_components, hidden_layer_sizes, image_shape,
                     condition_columns=()):
    """Build the :class:`VAEModule` for flat features or, with ``image_shape``, images.

    Parameters
    ----------
    n_features : int
        Number of columns of a full row: data (pixels for images) and conditions.
    n_components : int
        Latent dimension.
    hidden_layer_sizes : tuple of int or None
        Dense hidden layers. ``None`` means ``MLP_HIDDEN_LAYER_SIZES`` for an
        MLP and ``CONV_DENSE_UNITS`` after the convolutional stack.
    image_shape : tuple of int of length 3 or None
        ``(channels, height, width)`` of the data columns; ``None`` builds an MLP.
    condition_columns : sequence of int, default=()
        Columns that are conditions: inputs of the encoder and the decoder,
        not modelled.

    Returns
    -------
    module : VAEModule
    """
    n_conditions = len(condition_columns)
    args = (n_features - n_conditions, n_components, hidden_layer_sizes, image_shape, n_conditions)
    return VAEModule(
        build_encoder(*args), build_decoder(*args),
        condition_columns=condition_columns, n_features=n_features,
    )


class _LeakyReLU(nn.LeakyReLU):
    """LeakyReLU with the slope 0.2 of Kim & Mnih (2018); a class so modules pickle."""

    def __init__(self):
        super().__init__(0.2)


class Discriminator(nn.Module):
    """MLP classifying latent codes as joint samples (logit 0) or permuted (logit 1).

    Kim & Mnih (2018), Appendix: 6 layers of 1000 units with LeakyReLU(0.2);
    the widths are ``hidden_layer_sizes`` (FactorVAE's default is 4 x 256).
    """

    def __init__(self, n_components, hidden_layer_sizes):
        super().__init__()
        self.net = _mlp((n_components, *hidden_layer_sizes, 2), activation=_LeakyReLU)

    def forward(self, z):
        return self.net(z)


class UnsupportedInitError(TypeError):
    """A module :func:`build_initialized` cannot initialise from a generator."""


# Layers whose reset_parameters() initialize_parameters reproduces with a generator.
_KAIMING_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def initialize_parameters(module, generator):
    """Initialise ``module`` in place as torch's defaults would, drawing from ``generator``.

    Linear and (transposed) convolution layers get torch's own
    ``reset_parameters`` scheme (``kaiming_uniform_(a=sqrt(5))`` weights,
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` biases), but from a private
    generator: torch's global RNG, shared by every thread of the process, is
    neither read nor advanced.

    Parameters
    ----------
    module : torch.nn.Module
    generator : torch.Generator
        On the parameters' device.

    Raises
    ------
    UnsupportedInitError
        If a parameter belongs to a layer of another kind.
    """
    covered = set()
    with torch.no_grad():
        for layer in module.modules():
            if not isinstance(layer, _KAIMING_LAYERS):
                continue
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            covered.add(id(layer.weight))
            if layer.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
                covered.add(id(layer.bias))
    others = [name for name, p in module.named_parameters() if id(p) not in covered]
    if others:
        raise UnsupportedInitError(
            f"no generator-based initialisation for the parameters {others}."
        )


def build_initialized(factory, generator):
    """``factory()`` built without touching torch's global RNG, initialised from ``generator``.

    The module is constructed on the ``meta`` device (no memory, no random
    draws), allocated on the CPU, then initialised by
    :func:`initialize_parameters`. Concurrent threads drawing from torch's
    global RNG neither change the result nor see their own stream changed.

    Parameters
    ----------
    factory : callable
        Returns the module, e.g. ``lambda: build_vae_module(...)``.
    generator : torch.Generator
        CPU generator.

    Returns
    -------
    module : torch.nn.Module
    """
    with torch.device("meta"):
        module = factory()
    if any(True for _ in module.buffers()):
        raise UnsupportedInitError("build_initialized supports modules without buffers only.")
    module = module.to_empty(device="cpu")
    initialize_parameters(module, generator)
    return module


def build_module(factory, generator):
    """``factory()`` initialised from ``generator``, whatever layers it holds.

    Modules made of linear and (transposed) convolution layers, the built-in
    ones among them, go through :func:`build_initialized`: torch's global RNG
    is never touched. Others (custom modules with their own parameters or
    buffers) are built normally, each layer initialising itself as it
    defines, from torch's global RNG seeded from ``generator`` inside
    :func:`torch.random.fork_rng` (restored afterwards; one such build at a
    time in this process).
    """
    try:
        return build_initialized(factory, generator)
    except UnsupportedInitError:
        pass
    except Exception:  # noqa: BLE001 - some constructors do not run on the meta device
        pass
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        # The CPU generator alone: torch.manual_seed would reseed every CUDA and MPS
        # generator too, which fork_rng(devices=[]) does not restore.
        torch.random.default_generator.manual_seed(seed)
        return factory()
