"""Shared base of the VAE estimators: the whole scikit-learn contract.

A concrete estimator adds its hyperparameters and one method,
``_make_objective``, returning the :class:`~sklearn_betavae._net.VAEObjective`
that holds its regulariser. Conditions (``condition_features``) and the
supervised term (``supervision_weight``) are shared by every model and live here,
in the data path and in :class:`~sklearn_betavae._net.VAEObjective`.
"""

import copy
import re
import warnings
from abc import ABCMeta, abstractmethod
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping
from torch import nn
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils._set_output import ADAPTERS_MANAGER, _get_output_config
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_array,
    check_is_fitted,
    validate_data,
)

from ._allocator import prime_allocator
from ._losses import decoder_mean, gaussian_kl_per_dim, reconstruction_log_likelihood
from ._modules import ConditionedModule, VAEModule, build_decoder, build_encoder, build_module
from ._net import ArrayDataset, HoldoutSplit, VAENet
from ._parallel import limit_torch_threads_to_dask_worker
from ._random import keyed_standard_normal
from .exceptions import (
    PosteriorCollapseWarning,
    TrainingDivergedError,
    TrainingInterruptedWarning,
)

# Input dtypes used as they are; anything else is converted to float64. uint8 and
# bool are cast to float32 per batch, so a large image array is never copied whole.
_INPUT_DTYPES = (np.float64, np.float32, np.uint8, np.bool_)
# Monte Carlo samples of z per x in score_samples / rate_distortion.
_N_SCORE_SAMPLES = 8
# Likelihoods whose data must lie in [0, 1].
_UNIT_INTERVAL_LIKELIHOODS = ("bernoulli", "continuous_bernoulli")
# Device types a model can train on ("auto" picks cuda or cpu).
_DEVICE_TYPES = ("cpu", "cuda", "mps")
# Optimizers by name; built fused (_fused_optimizer_params).
_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# Whether the convolutional networks use the channels_last memory format, per precision
# (benchmarks/bench_speed.py measures it).
_CHANNELS_LAST = {"fp32": False, "bf16": True, "fp16": True}
# A latent dimension whose mean KL is below this (nats) carries no information.
_COLLAPSED_KL = 0.01
# regularizer_scale="auto": the regulariser's weights keep their pressure per modelled
# feature of a 32x32 image (see the shared docs entry below).
_REFERENCE_N_FEATURES = 32 * 32
# Parameters and fitted attributes added since 0.1.0, with the values that reproduce a
# model saved before them (pickles and save() files of earlier versions lack them).
_LEGACY_PARAMS = {"regularizer_scale": 1.0}
_LEGACY_FITTED = {"regularizer_scale_": _LEGACY_PARAMS["regularizer_scale"]}
# Where the HTML representation of an estimator links to (its API page).
_DOCS_URL = "https://sklearn-betavae.readthedocs.io/en/latest/"


# numpydoc entries the four estimators share word for word: a docstring line
# ``[shared: name]`` becomes the entry (see _BaseVAE.__init_subclass__).
_SHARED_DOCS = {
    # Continues each model's own anneal_steps entry (hence the deeper indent).
    "anneal_steps_fraction": (
        "        Given as a float in (0, 1), a fraction of the whole training:\n"
        "        ``round(anneal_steps * max_epochs * ceil(n_samples / batch_size))``\n"
        "        steps (the default, 0.3, warms up over the first 30% of the epochs,\n"
        '        whatever the data size; see docs/benchmarks.md, "Defaults"). With\n'
        "        :meth:`partial_fit`, ``n_samples`` is its ``dataset_size`` or, when not\n"
        "        given, the rows of the first chunk, so the warm-up ends after\n"
        "        ``anneal_steps * max_epochs`` passes over the data; give an int for\n"
        "        a stream of unknown length.\n"
    ),
    "image_shape": (
        "    image_shape : tuple of int or None, default=None\n"
        "        ``(height, width)`` or ``(channels, height, width)`` of images passed\n"
        "        flattened as rows of X. Selects the convolutional encoder and decoder\n"
        "        of Higgins et al. / Burgess et al. / Locatello et al.: 4x4 stride-2\n"
        "        convolutions with 32, 32, 64, 64 channels, then 256 units. Larger\n"
        "        images get further 64-channel convolutions while the last feature\n"
        "        map is at least 4x4 and its sides halve evenly: five at 64x64, where\n"
        "        the literature's four leave 4x4 (see docs/benchmarks.md,\n"
        "        \"Defaults\"). Height and width must be multiples of 16.\n"
    ),
    # Continues each model's own regularizer_scale line (its default is the model's own).
    "regularizer_scale": (
        "        Multiplies the whole regulariser (every weight of it, and the KL\n"
        "        term) against the reconstruction term, which is a sum over the\n"
        "        modelled features: a weight that fits 1,000 pixels presses four times\n"
        "        less on 4,000. ``\"auto\"`` is ``max(1, n_modelled / 1024)``: the\n"
        "        weights keep the pressure per feature they have on a 32x32 image (as\n"
        "        the normalised beta of Higgins et al. 2017); up to 1,024 modelled\n"
        "        features (digits, 32x32 images) it is 1.0, at 64x64 4.0. 1.0 gives the\n"
        "        papers' objectives exactly. Each model's default is the one measured\n"
        "        best at 64x64 at a CPU budget (see docs/benchmarks.md, \"Defaults\").\n"
        "        The ELBO of ``score`` never changes.\n"
    ),
    "n_components": (
        "    n_components : int, default=10\n"
        "        Dimension of the latent code z.\n"
    ),
    "hidden_layer_sizes": (
        "    hidden_layer_sizes : tuple of int or None, default=None\n"
        "        Widths of the dense hidden layers of the encoder (mirrored by the\n"
        "        decoder). ``None``: ``(256, 256)`` for the MLP; ``(256,)`` after the\n"
        "        convolutional stack.\n"
    ),
    "encoder": (
        "    encoder : class or callable or None, default=None\n"
        "        A custom encoder: called as ``encoder(in_features, out_features)``\n"
        "        at each fit (a class such as ``torch.nn.Linear`` or a factory\n"
        "        function), it must return a new ``torch.nn.Module`` mapping a float32\n"
        "        batch of shape ``(batch_size, in_features)`` (the flat rows of X, the\n"
        "        condition columns last) to ``(batch_size, out_features)`` with\n"
        "        ``out_features = 2 * n_components`` (means, then log-variances), or\n"
        "        to a pair ``(mu, logvar)``. ``None``: the built-in MLP or\n"
        "        convolutional encoder. Use a class or a module-level function so that\n"
        "        the estimator pickles.\n"
    ),
    "decoder": (
        "    decoder : class or callable or None, default=None\n"
        "        A custom decoder, called as ``decoder(in_features, out_features)``\n"
        "        with ``in_features = n_components`` (plus the number of condition\n"
        "        columns, appended to the codes) and ``out_features`` the number of\n"
        "        modelled features of X; its module maps codes to logits (Bernoulli\n"
        "        likelihoods) or means (Gaussian). ``None``: the built-in decoder.\n"
    ),
    "condition_features": (
        "    condition_features : array-like of int or str, or None, default=None\n"
        "        Columns of X that are conditions ``c``, not data: indices, or names\n"
        "        when X is a DataFrame. The encoder is ``q(z | x, c)`` and the decoder\n"
        "        ``p(x | z, c)`` for the other columns ``x`` (with ``image_shape``,\n"
        "        the image; the conditions join the dense layers). ``transform``\n"
        "        returns the codes followed by the conditions, ``inverse_transform``\n"
        "        takes that layout back, and ``sample`` needs ``conditions``.\n"
    ),
    "supervision_weight": (
        "    supervision_weight : float, default=0.0\n"
        "        Weight of the supervised term of Locatello et al. (2020), shared by\n"
        "        every model: with ``fit(X, y)``, ``y`` holding known factors of\n"
        "        variation (NaN where unknown), code dimension ``k`` is tied to factor\n"
        "        ``k`` on the labelled rows. 0 ignores ``y``. See the user guide.\n"
    ),
    "supervision_loss": (
        '    supervision_loss : {"xent", "l2", "cov"}, default="xent"\n'
        "        The supervised term, on the posterior means of labelled rows and the\n"
        "        factors rescaled to [0, 1] by their range over the labelled rows:\n"
        '        ``"xent"``, the cross-entropy between ``sigmoid(mu_k)`` and factor\n'
        '        ``k`` (the paper\'s default); ``"l2"``, their squared difference;\n'
        '        ``"cov"``, the squared covariances of each code dimension with the\n'
        "        factors other than its own.\n"
    ),
    "likelihood": (
        '    likelihood : {"auto", "bernoulli", "continuous_bernoulli", "gaussian"}, default="auto"\n'
        '        ``"bernoulli"``: X in [0, 1], the decoder outputs logits (binary\n'
        "        cross-entropy; a probability for binary X, not a density for grey\n"
        '        levels). ``"continuous_bernoulli"``: X in [0, 1], the normalised\n'
        "        density of Loaiza-Ganem & Cunningham (2019), so that the ELBO bounds\n"
        '        the log-density of grey levels. ``"gaussian"``: real-valued X,\n'
        '        ``N(x | mean(z), I)`` (standardise X first). ``"auto"``: Bernoulli\n'
        "        when the training data lie in [0, 1], Gaussian otherwise (see\n"
        "        ``likelihood_`` and the user guide's comparison).\n"
    ),
    "labelled_batch_size": (
        "    labelled_batch_size : int or None, default=None\n"
        "        Labelled rows drawn uniformly with replacement, for the supervised\n"
        "        term, with every minibatch (oversampling: every step sees labelled\n"
        "        rows however few there are; an epoch is still one pass over X).\n"
        "        ``None``: ``batch_size``. Unused without supervision.\n"
    ),
    "optimizer": (
        '    optimizer : {"adam", "adamw"} or torch.optim.Optimizer subclass, default="adam"\n'
        "        Optimizer of the encoder and decoder: Adam, AdamW (decoupled weight\n"
        "        decay) or any torch optimizer class, built with ``learning_rate``\n"
        "        and ``weight_decay``.\n"
    ),
    "weight_decay": (
        "    weight_decay : float, default=0.0\n"
        "        Weight decay of the optimizer (L2 penalty for Adam, decoupled for\n"
        "        AdamW).\n"
    ),
    "clip_grad_norm": (
        "    clip_grad_norm : float or None, default=None\n"
        "        Clip the gradients of the encoder and decoder to this total L2 norm\n"
        "        before each step (``torch.nn.utils.clip_grad_norm_``). ``None``: no\n"
        "        clipping.\n"
    ),
    "precision": (
        '    precision : {"fp32", "bf16", "fp16", "auto"}, default="auto"\n'
        "        Arithmetic of the forward passes, in training and inference:\n"
        '        ``"fp32"``; ``"bf16"`` (bfloat16 autocast: matrix products and\n'
        "        convolutions in bfloat16, parameters, optimizer, losses and KL / TC\n"
        '        reductions in float32); ``"fp16"`` (float16 autocast with loss\n'
        '        scaling, CUDA only); ``"auto"``: bf16 for the convolutional networks\n'
        "        on a device with native bfloat16 (CUDA compute capability 8.0+, CPUs\n"
        "        with AMX or AVX-512 BF16), fp32 otherwise. See ``precision_``, which\n"
        "        pickling and :func:`~sklearn_betavae.load` keep (a model trained in\n"
        "        fp16 runs in fp32 on a machine without CUDA, with a warning).\n"
    ),
    "max_epochs": (
        "    max_epochs : int, default=50\n"
        "        Number of passes over the training data (per call of ``fit``).\n"
    ),
    "validation_fraction": (
        "    validation_fraction : float, default=0.1\n"
        "        Fraction of the data held out when ``early_stopping=True``.\n"
    ),
    "n_iter_no_change": (
        "    n_iter_no_change : int, default=10\n"
        "        Patience of early stopping, in epochs.\n"
    ),
    "tol": (
        "    tol : float, default=1e-4\n"
        "        Minimal improvement of the validation loss, in nats.\n"
    ),
    "device": (
        '    device : {"cpu", "cuda", "mps", "auto"} or str, default="cpu"\n'
        '        Torch device. ``"auto"`` picks CUDA when available. Inference runs\n'
        "        where the fitted model is; a new value takes effect at the next\n"
        "        ``fit``, and a warm start or ``partial_fit`` moves the fitted model\n"
        "        (weights and optimizer state) there. A model fitted on a GPU\n"
        "        unpickles or loads on a machine without one, on the CPU.\n"
    ),
    "verbose": (
        "    verbose : int, default=0\n"
        "        0: silent; 1: one progress bar for the whole fit (on stderr); 2 or\n"
        "        more: a table of the training progress per epoch.\n"
    ),
    "regularizer_scale_": (
        "    regularizer_scale_ : float\n"
        "        The regulariser's scale in force (``regularizer_scale`` resolved).\n"
    ),
    "precision_": (
        '    precision_ : {"fp32", "bf16", "fp16"}\n'
        '        The precision used (``precision`` with ``"auto"`` resolved).\n'
    ),
    "likelihood_": (
        "    likelihood_ : str\n"
        '        The likelihood used: ``"bernoulli"``, ``"continuous_bernoulli"`` or\n'
        '        ``"gaussian"``.\n'
    ),
    "condition_indices_": (
        "    condition_indices_ : ndarray of shape (n_conditions,)\n"
        "        Column indices of the conditions in X, in the order of\n"
        "        ``condition_features`` (empty without conditions).\n"
    ),
    "modelled_indices_": (
        "    modelled_indices_ : ndarray of shape (n_modelled,)\n"
        "        Column indices of the modelled (non-condition) columns of X, in\n"
        "        increasing order (``n_modelled = n_features_in_ - n_conditions``).\n"
    ),
    "n_features_in_": (
        "    n_features_in_ : int\n"
        "        Number of features seen during fit.\n"
    ),
    "feature_names_in_": (
        "    feature_names_in_ : ndarray of shape (`n_features_in_`,)\n"
        "        Names of features seen during fit, when X has string feature names.\n"
    ),
    "n_iter_": (
        "    n_iter_ : int\n"
        "        Number of epochs run (completed epochs if training was interrupted\n"
        "        or diverged).\n"
    ),
    "n_samples_seen_": (
        "    n_samples_seen_ : int\n"
        "        Number of training rows: those of the last ``fit`` (minus the\n"
        "        validation rows of early stopping), or all rows passed to\n"
        "        ``partial_fit`` so far.\n"
    ),
    "net_": (
        "    net_ : skorch.NeuralNet\n"
        "        The skorch net that ran the training.\n"
    ),
    "module_, encoder_, decoder_": (
        "    module_, encoder_, decoder_ : torch.nn.Module\n"
        "        The fitted model, its encoder and its decoder.\n"
    ),
}


def _resolve_device(device):
    """Map ``"auto"`` to ``"cuda"`` or ``"cpu"``; check the device exists and is usable."""
    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a torch device ({exc}).") from None
    if kind not in _DEVICE_TYPES:
        raise ValueError(
            f"device={device!r} cannot train a model: use 'cpu', 'cuda' (or 'cuda:N'), "
            "'mps' or 'auto'."
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='cpu' or device='auto'."
        )
    index = torch.device(device).index
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was requested but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s), numbered from 0."
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was requested but MPS is not available.")
    return device


def _first_step_diverged(error, X):
    """The message of a first fit whose very first step was not finite: usually X's scale."""
    largest = max(float(X.max()), -float(X.min()))  # reductions: no copy of a large X
    return (
        f"{error} Its largest absolute value is {largest:.6g}: scale it (X / 255 for 8-bit "
        "images, MinMaxScaler(clip=True) for data to read as Bernoulli, StandardScaler "
        "otherwise). "
        "Nothing was learnt: the estimator stays unfitted."
    )


def _float64(tensor):
    """``tensor`` in float64, moved to the CPU from a device without float64 (MPS)."""
    return (tensor.cpu() if tensor.device.type == "mps" else tensor).double()


def _fast_bf16(device):
    """Whether ``device`` computes bfloat16 matrix products natively.

    CUDA: compute capability 8.0 or later, of the GPU ``device`` names (older
    GPUs emulate bf16, slowly: ``torch.cuda.is_bf16_supported`` counts them).
    CPU: AMX tiles or AVX-512 BF16 instructions.
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.get_device_capability(torch.device(device))[0] >= 8
    if kind == "cpu":
        return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    return False


def _autocast_runs(device_type, dtype):
    """Whether ``torch.autocast(device_type, dtype=dtype)`` really runs in ``dtype``.

    Probed rather than looked up by version: where the backend lacks the dtype
    (bf16 on MPS with older torch or macOS), torch raises or disables autocast
    with a warning, which would leave a model labelled bf16 training in fp32.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(device_type, dtype=dtype):
                enabled = torch.is_autocast_enabled(device_type)
                running = torch.get_autocast_dtype(device_type)
        except (RuntimeError, ValueError, TypeError):
            return False
    return enabled and running == dtype and not caught


def _resolve_precision(precision, device, convolutional):
    """The precision to train and infer in: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"`` is bf16 for the convolutional networks on a device with fast
    bf16 and fp32 otherwise (the small matrices of an MLP gain nothing from
    bf16; see the speed benchmark).
    """
    kind = torch.device(device).type
    if precision == "fp16" and kind != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA device (it trains with loss scaling there); got "
            f"device={device!r}. Use precision='bf16' or 'auto' on the CPU."
        )
    if precision == "auto":
        return "bf16" if convolutional and _fast_bf16(device) else "fp32"
    if precision == "bf16" and kind not in ("cpu", "cuda") and not _autocast_runs(
        kind, torch.bfloat16
    ):
        raise ValueError(
            f"precision='bf16' cannot run on device={device!r}: its autocast has no bfloat16 "
            f"with this torch ({torch.__version__}) and OS. Use precision='fp32' or 'auto'."
        )
    return precision


def _check_positive_ints(values, name):
    """``values`` as a tuple of positive Python ints, or a ValueError naming ``name``."""
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive integers; got {values!r}.") from None
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, Integral) or v < 1]
    if bad:
        raise ValueError(
            f"{name} must hold positive integers; got {values!r} (invalid: {bad!r})."
        )
    return tuple(int(v) for v in values)


def _fused_optimizer_params(prefix):
    """skorch arguments building the optimizer registered as ``prefix`` fused.

    The package's Adam / AdamW and FactorVAE's discriminator's Adam run torch's
    fused implementation, one kernel per parameter for the whole update (CPU,
    CUDA, MPS): 3.5x faster than the multi-tensor (foreach) path on the digits
    MLP (benchmarks/bench_speed.py).
    """
    return {f"{prefix}__fused": True}


def _check_layer_sizes(sizes, name):
    """Widths of hidden layers: a tuple of positive ints (empty for none)."""
    return _check_positive_ints(sizes, name)


def _image_shape(image_shape, n_features):
    """Normalise ``image_shape`` to ``(channels, height, width)`` and check it."""
    if image_shape is None:
        return None
    shape = _check_positive_ints(image_shape, "image_shape")
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ValueError(
            f"image_shape must be (height, width) or (channels, height, width); got {image_shape!r}."
        )
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"image_shape={image_shape!r} holds {int(np.prod(shape))} values but X has "
            f"{n_features} features."
        )
    if shape[1] % 16 or shape[2] % 16:
        raise ValueError(
            f"image_shape={image_shape!r}: height and width must be multiples of 16 for "
            "the four stride-2 convolutions."
        )
    return shape


def _check_callbacks(callbacks):
    """Each item a skorch ``Callback`` (instance or class) or a ``(name, callback)`` pair."""
    for item in callbacks or ():
        callback = item
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            callback = item[1]
        is_class = isinstance(callback, type) and issubclass(callback, Callback)
        if not (is_class or isinstance(callback, Callback)):
            raise ValueError(
                "callbacks must hold skorch callbacks (skorch.callbacks.Callback instances "
                f"or classes) or (name, callback) pairs; got {item!r}."
            )


def _check_module_factory(factory, name):
    """``encoder`` / ``decoder``: None, or a class or callable building a fresh module."""
    if factory is None:
        return None
    if isinstance(factory, nn.Module) or not callable(factory):
        raise ValueError(
            f"{name} must be a torch.nn.Module class or a callable called as "
            f"{name}(in_features, out_features) that returns a new module; got {factory!r}"
            " (a module instance would be shared by clones and refits)."
        )
    return factory


def _check_module_output(module, in_features, expected, name):
    """Run a custom module on two zero rows; its output must have ``expected`` columns."""
    with torch.no_grad():
        try:
            out = module(torch.zeros(2, in_features))
        except Exception as exc:  # noqa: BLE001 - any failure here is the user's module
            raise ValueError(
                f"the {name} failed on a batch of shape (2, {in_features}): {exc}"
            ) from exc
    parts = out if isinstance(out, (tuple, list)) else (out,)
    shapes = [tuple(p.shape) for p in parts]
    if shapes not in ([(2, expected)], [(2, expected // 2)] * 2):
        allowed = f"(2, {expected})" + (
            f" or a pair of (2, {expected // 2})" if name == "encoder" else ""
        )
        raise ValueError(
            f"the {name} maps a batch of shape (2, {in_features}) to {shapes}; expected "
            f"{allowed}."
        )


def _value_range(X, columns):
    """``(min, max)`` of the ``columns`` of X (all of them without a copy, else column-wise)."""
    if len(columns) == X.shape[1]:
        return X.min(), X.max()
    return X.min(axis=0)[columns].min(), X.max(axis=0)[columns].max()


def _check_bernoulli_range(X, likelihood, columns):
    """Bernoulli likelihoods need X in [0, 1]: say so instead of training on nonsense.

    Only the modelled ``columns`` count: conditions may take any value.
    """
    if likelihood not in _UNIT_INTERVAL_LIKELIHOODS or X.dtype == np.bool_:
        return
    x_min, x_max = _value_range(X, columns)
    if x_min < 0 or x_max > 1:
        which = "X" if len(columns) == X.shape[1] else "the modelled (non-condition) columns of X"
        raise ValueError(
            f"likelihood={likelihood!r} needs X in [0, 1], but {which} has values in "
            f"[{x_min}, {x_max}]. Scale X (e.g. MinMaxScaler(clip=True), which keeps held-out "
            "rows in [0, 1] too, or divide uint8 images by 255) or use likelihood='gaussian'."
        )


def _condition_indices(condition_features, n_features, feature_names):
    """Column indices of ``condition_features``: ints, or names of a DataFrame's columns."""
    features = [] if condition_features is None else list(condition_features)
    if all(isinstance(f, str) for f in features):
        if features and feature_names is None:
            raise ValueError(
                f"condition_features={features!r} names columns, but X has no column "
                "names: fit on a DataFrame with string column names or give column indices."
            )
        names = [] if feature_names is None else feature_names
        position = {name: i for i, name in enumerate(names)}
        unknown = [f for f in features if f not in position]
        if unknown:
            raise ValueError(f"condition_features {unknown!r} are not columns of X.")
        indices = [position[f] for f in features]
    elif all(isinstance(f, Integral) and not isinstance(f, bool) for f in features):
        outside = [f for f in features if not 0 <= f < n_features]
        if outside:
            raise ValueError(
                f"condition_features {outside!r} are not column indices of X, which has "
                f"{n_features} features (indices 0 to {n_features - 1})."
            )
        indices = [int(f) for f in features]
    else:
        raise ValueError(
            "condition_features must hold column indices (ints) or, when X is a "
            f"DataFrame, column names (strings); got {condition_features!r}."
        )
    duplicated = sorted({f for f in features if features.count(f) > 1}, key=str)
    if duplicated:
        raise ValueError(f"condition_features lists {duplicated!r} more than once.")
    if len(indices) >= n_features:
        raise ValueError(
            f"condition_features names all {n_features} columns of X: at least one "
            "column must be modelled."
        )
    return np.asarray(indices, dtype=np.intp)


def _supervision_targets(y, n_samples, n_components):
    """Factors ``y`` for the supervised term, rescaled to [0, 1] by their labelled range.

    ``(y - min) / (max - min)`` per factor, min and max over its known
    values; NaN (unknown) stays NaN. A 1-D ``y`` is one factor. Returns
    float32 targets of shape ``(n_samples, n_factors)``.
    """
    if y is None:
        raise ValueError(
            "supervision_weight > 0 ties code dimensions to known factors of variation: "
            "pass them as y in fit(X, y), shape (n_samples, n_factors), NaN for "
            "unlabelled rows."
        )
    # The dtypes of a DataFrame's columns or of a Series, pandas' nullable ones (Int64,
    # Float64, with pd.NA for unknown) included; an array's otherwise.
    if hasattr(y, "columns"):
        dtypes = list(y.dtypes)
    elif hasattr(y, "dtype"):
        dtypes = [y.dtype]
    else:
        dtypes = [np.asarray(y).dtype]
    if any(getattr(dtype, "kind", "O") not in "biuf" for dtype in dtypes):
        names = sorted({str(dtype) for dtype in dtypes})
        raise ValueError(
            "y must hold numeric factor values (NaN for unlabelled rows), got values of "
            f"dtype {', '.join(names)}."
        )
    y = check_array(y, dtype=np.float64, ensure_2d=False, ensure_all_finite="allow-nan",
                    input_name="y")
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if len(y) != n_samples:
        raise ValueError(
            f"y has {len(y)} rows but X has {n_samples}: one row of factors per row of X."
        )
    n_factors = y.shape[1]
    if n_factors > n_components:
        raise ValueError(
            f"y has {n_factors} factors but the model has n_components={n_components}: "
            "each factor is tied to a code dimension of its own, so n_factors <= n_components."
        )
    known = ~np.isnan(y)
    if not known.any():
        raise ValueError(
            "y has no labelled row (every value is NaN): the supervised term needs some "
            "known factor values; set supervision_weight=0 to train without them."
        )
    for k in range(n_factors):
        values = y[known[:, k], k]
        if values.size == 0 or values.min() == values.max():
            raise ValueError(
                f"Factor {k} of y is {'never known' if values.size == 0 else 'constant'} "
                "on the labelled rows: it cannot be rescaled to [0, 1] and tied to a code "
                "dimension."
            )
    low = np.nanmin(y, axis=0)
    return ((y - low) / (np.nanmax(y, axis=0) - low)).astype(np.float32)


def _check_float32_range(X):
    """Models compute in float32: values beyond its range would become inf."""
    if X.dtype == np.float64 and X.size:
        largest = max(X.max(), -X.min())  # no |X| temporary: X may be a large memmap
        if largest > np.finfo(np.float32).max:
            raise ValueError(
                f"X has values up to {largest:g}, beyond the float32 range the models "
                "compute in (about 3.4e38); scale X first."
            )


def _check_finite_output(values, method):
    """A model's outputs that overflowed raise, rather than returning NaN or inf."""
    for array in values if isinstance(values, tuple) else (values,):
        if not np.isfinite(array).all():
            raise ValueError(
                f"{method} produced non-finite values: the model's outputs overflow "
                "float32 for this input (values far outside the training data?)."
            )
    return values


def _unwrapped(module):
    """A custom module as the user built it (without the conditions adapter)."""
    return module.module if isinstance(module, ConditionedModule) else module


def _output_dtype(dtype):
    """float32 stays float32; everything else gives float64 (scikit-learn's rule)."""
    return np.float32 if dtype == np.float32 else np.float64


@contextmanager
def _fitted_state_kept_on_failure(estimator):
    """Undo every change to the fitted state of ``estimator`` if the block fails.

    The fitted state is every attribute that is not a constructor parameter
    (``n_features_in_`` set by validation, ``net_``, private ones...). A fit
    that diverged is not a failure here: it keeps the model of its last finite
    step (see :class:`~sklearn_betavae.exceptions.TrainingDivergedError`).
    """
    params = estimator.get_params(deep=False)
    before = {k: v for k, v in vars(estimator).items() if k not in params}
    try:
        yield
    except TrainingDivergedError:
        raise
    except BaseException:
        for key in [k for k in vars(estimator) if k not in params]:
            delattr(estimator, key)
        vars(estimator).update(before)
        raise


class _BaseVAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the VAE estimators. Not to be used directly.

    Holds fitting (on a skorch :class:`~sklearn_betavae._net.VAENet`),
    validation, ``transform`` (posterior means), ``inverse_transform``
    (decoder means), ``sample``, ``score_samples`` / ``score`` (ELBO) and
    ``rate_distortion``. Subclasses add hyperparameters and ``_make_objective``.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", None],
        "image_shape": ["array-like", None],
        "encoder": [callable, None],
        "decoder": [callable, None],
        "condition_features": ["array-like", None],
        "likelihood": [StrOptions({"auto", "bernoulli", "continuous_bernoulli", "gaussian"})],
        "anneal_steps": [
            Interval(Integral, 0, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
        ],
        "free_bits": [Interval(Real, 0, None, closed="left")],
        "regularizer_scale": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "supervision_weight": [Interval(Real, 0, None, closed="left")],
        "supervision_loss": [StrOptions({"xent", "l2", "cov"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "labelled_batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [StrOptions(set(_OPTIMIZERS)), callable],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "clip_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "precision": [StrOptions({"auto", "fp32", "bf16", "fp16"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
    }

    #: skorch net class; FactorVAE brings its own with a discriminator step.
    _net_class = VAENet
    #: parameters that shape the network: a warm start cannot change them.
    _architecture_params = (
        "n_components",
        "hidden_layer_sizes",
        "image_shape",
        "encoder",
        "decoder",
        "condition_features",
        "likelihood",
        "device",
        "precision",
    )
    # The HTML representation links to the estimator's API page.
    _doc_link_module = "sklearn_betavae"
    _doc_link_template = _DOCS_URL + "generated/{estimator_module}.{estimator_name}.html"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__:
            # One text for the entries every estimator shares (_SHARED_DOCS).
            cls.__doc__ = re.sub(
                r"^ *\[shared: ([\w, ]+)\]\n",
                lambda match: _SHARED_DOCS[match.group(1)],
                cls.__doc__,
                flags=re.MULTILINE,
            )

    @abstractmethod
    def __init__(
        self,
        n_components=10,
        *,
        anneal_steps=0.3,
        free_bits=0.0,
        regularizer_scale="auto",
        supervision_weight=0.0,
        supervision_loss="xent",
        likelihood="auto",
        hidden_layer_sizes=None,
        image_shape=None,
        encoder=None,
        decoder=None,
        condition_features=None,
        batch_size=64,
        labelled_batch_size=None,
        learning_rate=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        clip_grad_norm=None,
        precision="auto",
        max_epochs=50,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="cpu",
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.n_components = n_components
        self.anneal_steps = anneal_steps
        self.free_bits = free_bits
        self.regularizer_scale = regularizer_scale
        self.supervision_weight = supervision_weight
        self.supervision_loss = supervision_loss
        self.likelihood = likelihood
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.encoder = encoder
        self.decoder = decoder
        self.condition_features = condition_features
        self.batch_size = batch_size
        self.labelled_batch_size = labelled_batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.clip_grad_norm = clip_grad_norm
        self.precision = precision
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to X.

        With ``warm_start=True`` and a fitted model, training continues from
        the current weights for ``max_epochs`` more epochs, with the current
        ``learning_rate``, ``batch_size``, regularisation weights, early
        stopping settings, callbacks and ``verbose``.

        If fitting fails (bad input or parameters, an unavailable device, an
        error in a callback...), the estimator is left as it was before the
        call: unfitted, or with its previous model. Two exceptions: a fit
        whose loss or gradients stop being finite raises
        :class:`~sklearn_betavae.exceptions.TrainingDivergedError` (a
        ``ValueError``) and keeps the model of the last finite step; an
        interrupted fit (Ctrl-C) warns with
        :class:`~sklearn_betavae.exceptions.TrainingInterruptedWarning` and
        keeps the model trained so far.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Training data: float64, float32, uint8 or bool arrays are used as
            they are (uint8 and bool are cast to float32 per batch, never as a
            whole); ``numpy.memmap`` inputs are read batch by batch.
        y : array-like of shape (n_samples, n_factors) or (n_samples,), default=None
            Known factors of variation, NaN where unknown (a row of NaN is an
            unlabelled row; a 1-D ``y`` is one factor), used only when
            ``supervision_weight > 0``: code dimension ``k`` is then tied to
            factor ``k`` on the labelled rows. Ignored otherwise, so that
            disentanglement scorers can receive the factors as ``y``.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        with _fitted_state_kept_on_failure(self):
            continuing = self.warm_start and self.__sklearn_is_fitted__()
            X = self._validate_training_data(X, reset=not continuing)
            targets = None
            if self.supervision_weight > 0:
                targets = _supervision_targets(y, X.shape[0], self.n_components)
            n_train = self._n_train(X)
            self.n_samples_seen_ = self._anneal_rows = n_train
            self._fit(
                X, epochs=self.max_epochs, continuing=continuing, dataset_size=n_train,
                targets=targets,
            )
        self._warn_if_collapsed()
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, *, dataset_size=None):
        """Train for one epoch on X, initialising the model on the first call.

        For data that arrive in chunks, or that do not fit in memory at once
        (a ``numpy.memmap`` is read batch by batch by :meth:`fit` already).

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Training data, as in :meth:`fit`.
        y : Ignored
            Not used, present for API consistency by convention.
        dataset_size : int or None, default=None
            Number ``N`` of samples in the whole dataset the chunks come from.
            The total-correlation estimators (BetaTCVAE's objective and the
            KL-split diagnostic of every model) weight the minibatch by it.
            ``None`` uses ``n_samples_seen_``, the rows passed to
            ``partial_fit`` so far, this chunk included: right during the
            first pass over the chunks, too large after it. Give it whenever
            it is known.

        Returns
        -------
        self : object
            The estimator, trained for one more epoch.
        """
        if self.supervision_weight > 0:
            raise ValueError(
                "partial_fit does not train the supervised term (supervision_weight > 0): "
                "it rescales the factors by their range over all labelled rows and draws "
                "labelled rows from the whole training set. Use fit, with warm_start=True "
                "to continue training."
            )
        if dataset_size is not None and (
            isinstance(dataset_size, bool) or not isinstance(dataset_size, Integral)
            or dataset_size < 1
        ):
            raise ValueError(f"dataset_size must be a positive integer, got {dataset_size!r}.")
        with _fitted_state_kept_on_failure(self):
            continuing = self.__sklearn_is_fitted__()
            X = self._validate_training_data(X, reset=not continuing)
            seen = (self.n_samples_seen_ if continuing else 0) + self._n_train(X)
            self.n_samples_seen_ = seen
            if dataset_size is not None and dataset_size < len(X):
                raise ValueError(
                    f"dataset_size={dataset_size} is smaller than this chunk of {len(X)} rows."
                )
            size = seen if dataset_size is None else int(dataset_size)
            if not continuing:
                self._anneal_rows = seen
            # A fractional warm-up counts epochs of a fixed size: of dataset_size rows, or
            # of the first chunk's (or of fit's X, when fit began the training). Not of
            # n_samples_seen_: a warm-up that grew with every call would never end.
            anneal_rows = dataset_size or getattr(self, "_anneal_rows", seen)
            return self._fit(X, epochs=1, continuing=continuing, dataset_size=size,
                             anneal_rows=anneal_rows)

    def transform(self, X):
        """Encode X as the posterior means ``E[z | x]``.

        Deterministic, like :meth:`sklearn.decomposition.FactorAnalysis.transform`,
        and row by row: a row's code does not depend on the other rows of X.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components + n_conditions)
            Posterior means, followed by the condition columns of X as they
            are (none without ``condition_features``); float32 for float32 X,
            float64 otherwise.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=False)
        _check_float32_range(X)
        net = self.net_
        mu = net.infer_rows(X, lambda x: net.encode_rows(x)[0])
        Z = _check_finite_output(mu, "transform").astype(_output_dtype(X.dtype), copy=False)
        if not len(self.condition_indices_):
            return Z
        return np.hstack([Z, X[:, self.condition_indices_].astype(Z.dtype)])

    def kl_per_dim(self, X):
        """KL divergence of each posterior dimension from the prior, in nats.

        ``KL(q(z_j | x) || N(0, 1))`` in closed form for every sample and
        latent dimension; its mean over samples tells which dimensions carry
        information (about zero for a collapsed one), and its row sums are
        the rate of :meth:`rate_distortion`.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        kl : ndarray of shape (n_samples, n_components)
            Per-sample, per-dimension KL, float64.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=False)
        _check_float32_range(X)

        def kl(x):
            mu, logvar = self.net_.encode_rows(x)
            return gaussian_kl_per_dim(_float64(mu), _float64(logvar))

        return _check_finite_output(self.net_.infer_rows(X, kl), "kl_per_dim")

    def inverse_transform(self, X):
        """Decode latent codes to the mean of ``p(x | z)`` in input space.

        With ``condition_features``, X has the layout of :meth:`transform`'s
        output, the codes followed by the conditions, and each row is decoded
        under its own conditions: changing the condition columns of
        ``transform(X)`` before inverting it renders the same codes (the
        "style") under other conditions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components + n_conditions)
            Latent codes, then the condition columns if any, e.g. the output
            of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Decoder means: probabilities for a Bernoulli likelihood, means for
            the continuous Bernoulli and Gaussian ones; float32 for float32
            input, float64 otherwise. Condition columns hold the given
            conditions, in their original place.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=(np.float64, np.float32), input_name="X")
        n_conditions = len(self.condition_indices_)
        if Z.shape[1] != self.n_components + n_conditions:
            conditions = f" and {n_conditions} condition columns" if n_conditions else ""
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__}.inverse_transform "
                f"is expecting {self.n_components} latent components{conditions} as input."
            )
        _check_float32_range(Z)
        X_original = self._decode(Z, dtype=_output_dtype(Z.dtype), method="inverse_transform")
        container = _get_output_config("transform", self)["dense"]
        if container == "default":
            return X_original
        # set_output(transform="pandas"/"polars") applies here too, with the input's names.
        return ADAPTERS_MANAGER.adapters[container].create_container(
            X_original, X, columns=self._input_feature_names()
        )

    def _input_feature_names(self):
        """The names of the features seen in fit (``x0, x1, ...`` when X had none)."""
        if hasattr(self, "feature_names_in_"):
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)

    def sample(self, n_samples=1, random_state=None, conditions=None):
        """Generate samples: draw ``z ~ N(0, I)`` and decode it.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the prior draws (the global torch RNG is not touched).
        conditions : array-like of shape (n_samples, n_conditions) or (n_conditions,), default=None
            The conditions to decode under, in the order of
            ``condition_indices_``; one row is used for every sample.
            Required by a model fitted with ``condition_features``, refused
            by one fitted without.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Decoder means of the drawn codes (probabilities for Bernoulli),
            with the conditions in their columns.
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral):
            raise TypeError(f"n_samples must be a positive integer, got {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        conditions = self._check_sample_conditions(conditions, n_samples)
        seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
        generator = torch.Generator().manual_seed(int(seed))
        Z = torch.randn(n_samples, self.n_components, generator=generator).numpy()
        if conditions is not None:
            Z = np.hstack([Z.astype(np.float64), conditions])
        return self._decode(Z, dtype=self._sample_dtype, method="sample")

    def rate_distortion(self, X):
        """Per-sample rate and distortion in nats, the two terms of the ELBO.

        ``rate = KL(q(z|x) || N(0, I))`` (closed form) and
        ``distortion = -E_q(z|x)[log p(x|z)]`` (of the modelled columns:
        conditions are given, not modelled), estimated with 8
        reparameterised samples per x. Each row gets its own noise, a function
        of the row's values and of the fit (see
        :func:`~sklearn_betavae._random.keyed_standard_normal`): the result is
        deterministic, does not depend on which other rows are in X or on
        their order, and the Monte Carlo errors of different rows are
        independent, so that they average out in :meth:`score`.
        ``elbo = -(rate + distortion)``.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to evaluate.

        Returns
        -------
        rate : ndarray of shape (n_samples,)
            KL divergence of each posterior from the prior, float64.
        distortion : ndarray of shape (n_samples,)
            Expected negative log-likelihood of each sample, float64.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=False)
        _check_float32_range(X)
        _check_bernoulli_range(X, self.likelihood_, self.modelled_indices_)
        net, n_draws, n_components = self.net_, _N_SCORE_SAMPLES, self.n_components

        def rate_and_distortion(x, keys):
            x, c = net.module_.split(x)
            mu, logvar = net.encode(x, c)
            eps = keyed_standard_normal(keys, n_draws * n_components).astype(np.float32)
            eps = torch.from_numpy(eps).to(x.device).view(-1, n_draws, n_components)
            z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps
            if c is not None:
                c = c.repeat_interleave(n_draws, dim=0)
            # Reductions in float64: per-sample sums must not depend on the batch layout.
            decoded = _float64(net.decode(z.reshape(-1, n_components), c))
            x_rep = _float64(x).repeat_interleave(n_draws, dim=0)
            log_px = reconstruction_log_likelihood(x_rep, decoded, self.likelihood_)
            rate = gaussian_kl_per_dim(_float64(mu), _float64(logvar)).sum(1)
            return rate, -log_px.view(-1, n_draws).mean(1)

        out = self.net_.infer_rows(X, rate_and_distortion, row_seed=self._score_seed)
        return _check_finite_output(out, "rate_distortion")

    def score_samples(self, X):
        """Evidence lower bound of each sample at beta = 1, in nats.

        ``ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I)) <= log p(x)``,
        whatever the training objective was (beta, annealing, free bits and
        ``regularizer_scale`` only shape training). See :meth:`rate_distortion` for the estimate.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to evaluate.

        Returns
        -------
        elbo : ndarray of shape (n_samples,)
            Per-sample ELBO, float64.
        """
        rate, distortion = self.rate_distortion(X)
        return -(rate + distortion)

    def score(self, X, y=None):
        """Mean ELBO of X in nats (higher is better).

        The default criterion of :class:`~sklearn.model_selection.GridSearchCV`,
        like :meth:`sklearn.mixture.GaussianMixture.score`.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to evaluate.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        elbo : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    def get_feature_names_out(self, input_features=None):
        """Names of the columns of :meth:`transform`'s output.

        ``<classname>0, ..., <classname>{n_components - 1}`` for the codes,
        then the names of the condition columns (from ``feature_names_in_``,
        else ``x<index>``).

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; only checked against ``feature_names_in_``
            and used for the condition columns.

        Returns
        -------
        feature_names_out : ndarray of str objects
            Names of the output columns.
        """
        names = super().get_feature_names_out(input_features)
        if not len(self.condition_indices_):
            return names
        inputs = _check_feature_names_in(self, input_features)
        return np.concatenate([names, np.asarray(inputs, dtype=object)[self.condition_indices_]])

    @property
    def history_(self):
        """skorch ``History`` of the training: one row per epoch.

        Per epoch: ``train_loss``, ``train_reconstruction`` (distortion,
        ``-E[log p(x|z)]``), ``train_kl`` (rate), ``train_kl_per_dim``,
        ``train_mi``, ``train_tc``, ``train_dwkl`` (the KL split of Chen et al.
        2018), the model's own terms, ``train_supervised`` (the supervised
        term, unweighted, when ``supervision_weight > 0``), ``beta`` (the
        weight in force at the end of the epoch), the same with ``valid_``
        when early stopping holds out data (the validation loss has no
        supervised term), and per batch the same under ``"batches"``. Index
        it like ``history_[:, "train_kl"]``.
        """
        return self.net_.history

    @property
    def module_(self):
        """The fitted :class:`torch.nn.Module` (encoder and decoder)."""
        return self.net_.module_

    @property
    def encoder_(self):
        """The fitted encoder, ``x -> (mu, logvar)``."""
        return _unwrapped(self.net_.module_.encoder)

    @property
    def decoder_(self):
        """The fitted decoder, ``z -> logits (Bernoulli) or mean (Gaussian)``."""
        return _unwrapped(self.net_.module_.decoder)

    @abstractmethod
    def _make_objective(self, **common):
        """The :class:`~sklearn_betavae._net.VAEObjective` of this model.

        ``common`` holds what every objective takes: ``likelihood``,
        ``dataset_size``, ``anneal_steps`` (in steps), ``free_bits``,
        ``regularizer_scale`` (resolved) and the supervised term's
        ``supervision_weight`` and ``supervision_loss``.
        """

    def _objective(self, likelihood, dataset_size, n_modelled, anneal_rows=None):
        """The objective for ``dataset_size`` rows of ``n_modelled`` data columns.

        A fractional ``anneal_steps`` counts ``max_epochs`` epochs of ``anneal_rows``
        rows (``dataset_size`` when ``None``).
        """
        anneal_steps = self.anneal_steps
        if not isinstance(anneal_steps, Integral):
            # A fraction of the max_epochs epochs of training (at least one step).
            rows = dataset_size if anneal_rows is None else anneal_rows
            steps = self.max_epochs * -(-rows // self.batch_size)
            anneal_steps = max(1, round(anneal_steps * steps))
        return self._make_objective(
            likelihood=likelihood,
            dataset_size=dataset_size,
            anneal_steps=int(anneal_steps),
            free_bits=self.free_bits,
            regularizer_scale=self._regularizer_scale(n_modelled),
            supervision_weight=self.supervision_weight,
            supervision_loss=self.supervision_loss,
        )

    def _regularizer_scale(self, n_modelled):
        """``regularizer_scale`` resolved: ``"auto"`` is ``max(1, n_modelled / 1024)``."""
        if self.regularizer_scale == "auto":
            return max(1.0, n_modelled / _REFERENCE_N_FEATURES)
        return float(self.regularizer_scale)

    def __setstate__(self, state):
        # A pickle of an earlier version: the model it holds, with the parameters added since.
        state = {**_LEGACY_PARAMS, **state}
        if "net_" in state:
            state = {**_LEGACY_FITTED, **state}
        super().__setstate__(state)
        if "net_" in state:  # fp16 runs in fp32 where the net was unpickled without CUDA
            self._adopt_net_precision()

    def _adopt_net_precision(self):
        """``precision_`` (and the precision a warm start must keep) from ``net_``, which
        runs in fp32 where a model trained in fp16 was loaded without CUDA."""
        self.precision_ = self.net_.precision
        architecture = getattr(self, "_fit_architecture", None)
        fell_back = self.precision_ != "fp16"
        if architecture is not None and architecture["precision"] == "fp16" and fell_back:
            self._fit_architecture = {**architecture, "precision": self.precision_}

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def _validate_training_data(self, X, reset):
        """Validate X for fitting (float32 range included); checks the parameters too."""
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=reset)
        _check_float32_range(X)
        _check_callbacks(self.callbacks)
        return X

    def _check_sample_conditions(self, conditions, n_samples):
        """The ``conditions`` of :meth:`sample` as ``n_samples`` float64 rows, or ``None``."""
        n_conditions = len(self.condition_indices_)
        name = type(self).__name__
        if conditions is None:
            if n_conditions:
                raise ValueError(
                    f"This {name} was fitted with {n_conditions} condition columns "
                    f"(condition_indices_={self.condition_indices_.tolist()}): pass the "
                    "conditions to sample under, sample(n_samples, conditions=...)."
                )
            return None
        if not n_conditions:
            raise ValueError(
                f"conditions were given, but this {name} was fitted without "
                "condition_features: it has nothing to condition on."
            )
        conditions = check_array(conditions, dtype=np.float64, ensure_2d=False,
                                 input_name="conditions")
        if conditions.ndim == 1:
            conditions = conditions.reshape(1, -1)
        if conditions.shape[1] != n_conditions:
            raise ValueError(
                f"conditions has {conditions.shape[1]} columns, but this {name} has "
                f"{n_conditions} condition columns."
            )
        if len(conditions) == 1:
            return np.repeat(conditions, n_samples, axis=0)
        if len(conditions) != n_samples:
            raise ValueError(
                f"conditions has {len(conditions)} rows: give one row (used for every "
                f"sample) or n_samples={n_samples} rows."
            )
        return conditions

    def _n_train(self, X):
        """Number of training rows of X (early stopping holds some out)."""
        if not self.early_stopping:
            return X.shape[0]
        return X.shape[0] - HoldoutSplit(self.validation_fraction, 0).n_valid(X.shape[0])

    def _architecture(self):
        """The parameters that shape the network, normalised for comparison."""
        params = self.get_params(deep=False)
        return {
            name: tuple(params[name]) if isinstance(params[name], (list, np.ndarray)) else params[name]
            for name in self._architecture_params
        }

    def _make_net(self, n_features, likelihood, dataset_size, seed, conditions,
                  anneal_rows=None):
        """Build and initialise the skorch net, its weights drawn from ``seed`` alone.

        The modules are built on the meta device and initialised from a
        private generator (:func:`~sklearn_betavae._modules.build_module`):
        torch's global RNG is neither used nor advanced, so other threads can
        neither disturb the initialisation nor be disturbed by it (custom
        modules with layers of other kinds fall back to a seeded global RNG).
        ``conditions`` are the column indices of the conditions; ``anneal_rows``
        as in :meth:`_objective`.
        """
        device = _resolve_device(self.device)
        convolutional = self.image_shape is not None
        precision = _resolve_precision(self.precision, device, convolutional)
        module = self._build_module(n_features, conditions, torch.Generator().manual_seed(seed))
        if convolutional and _CHANNELS_LAST[precision]:
            module = module.to(memory_format=torch.channels_last)
        objective = self._objective(likelihood, dataset_size, n_features - len(conditions),
                                    anneal_rows)
        net = self._build_net(
            module, objective, device, seed, torch.Generator().manual_seed(seed + 1),
            precision=precision,
        )
        net.initialize()
        return net

    def _build_module(self, n_features, conditions, generator):
        """The encoder and decoder (built-in or the user's), initialised from ``generator``.

        With conditions, built-in networks take them beside their dense layers and
        custom modules as more input columns (:class:`~sklearn_betavae._modules.ConditionedModule`).
        """
        n_conditions = len(conditions)
        n_data = n_features - n_conditions
        image_shape = _image_shape(self.image_shape, n_data)
        hidden = self.hidden_layer_sizes
        if hidden is not None:
            hidden = _check_layer_sizes(hidden, "hidden_layer_sizes")
        built_in = (n_data, self.n_components, hidden, image_shape, n_conditions)
        sizes = {"encoder": (n_data + n_conditions, 2 * self.n_components),
                 "decoder": (self.n_components + n_conditions, n_data)}
        parts = {}
        for name, make_built_in in (("encoder", build_encoder), ("decoder", build_decoder)):
            factory = _check_module_factory(getattr(self, name), name)
            if factory is None:
                parts[name] = build_module(lambda make=make_built_in: make(*built_in), generator)
            else:
                in_features, out_features = sizes[name]
                custom = build_module(
                    lambda f=factory, i=in_features, o=out_features: f(i, o), generator
                )
                _check_module_output(custom, in_features, out_features, name)
                parts[name] = ConditionedModule(custom)
        return VAEModule(
            parts["encoder"], parts["decoder"],
            condition_columns=[int(i) for i in conditions], n_features=n_features,
        )

    def _optimizer_class(self):
        """The torch optimizer class ``optimizer`` names, or a ValueError."""
        if isinstance(self.optimizer, str):
            return _OPTIMIZERS[self.optimizer]
        if isinstance(self.optimizer, type) and issubclass(self.optimizer, torch.optim.Optimizer):
            return self.optimizer
        raise ValueError(
            f"optimizer must be 'adam', 'adamw' or a torch.optim.Optimizer subclass; got "
            f"{self.optimizer!r}."
        )

    def _build_net(self, module, objective, device, seed, generator, **net_params):
        """The skorch net around ``module``; ``net_params`` are extra arguments of ``_net_class``.

        ``generator`` draws the initial weights of any further module
        (FactorVAE's discriminator).
        """
        optimizer = self._optimizer_class()
        if isinstance(self.optimizer, str):
            net_params.update(_fused_optimizer_params("optimizer"))
        if self.weight_decay or isinstance(self.optimizer, str):
            net_params["optimizer__weight_decay"] = self.weight_decay
        return self._net_class(
            module=module,
            criterion=objective,
            optimizer=optimizer,
            device=device,
            **self._training_settings(seed),
            **net_params,
        )

    def _training_settings(self, seed):
        """The net's arguments that a warm start may change, from the current parameters.

        The user's callbacks (deep-copied) and early stopping among them.
        """
        callbacks = copy.deepcopy(self.callbacks) or []
        if self.early_stopping:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss",
                        patience=self.n_iter_no_change,
                        threshold=self.tol,
                        threshold_mode="abs",
                        load_best=True,
                        sink=print if self.verbose else _silent,
                    ),
                )
            )
        return {
            "lr": self.learning_rate,
            "clip_grad_norm": self.clip_grad_norm,
            "max_epochs": int(self.max_epochs),
            "batch_size": int(self.batch_size),
            "train_split": (
                HoldoutSplit(self.validation_fraction, seed) if self.early_stopping else None
            ),
            "callbacks": callbacks,
            "verbose": self.verbose,
            # Labelled rows per batch for the supervised term (the paper's: as many as unlabelled).
            "labelled_batch_size": (
                0 if self.supervision_weight == 0
                else self.labelled_batch_size or self.batch_size
            ),
        }

    def _continue_with_current_params(self, net, seed):
        """Apply the current parameters to the fitted ``net`` before a warm start.

        Refuses changes to the architecture and to the optimizer (whose state
        it continues); moves the model to a new ``device``; applies the
        learning rates, the batch size, early stopping, callbacks and
        ``verbose``.
        """
        current = self._architecture()
        changed = [
            f"{name} ({self._fit_architecture[name]!r} -> {value!r})"
            for name, value in current.items()
            if name != "device" and value != self._fit_architecture[name]
        ]
        if self._optimizer_class() is not net.optimizer:
            changed.append(f"optimizer ({net.optimizer.__name__} -> {self.optimizer!r})")
        if changed:
            raise ValueError(
                "warm_start cannot continue training after a change to the network or its "
                "optimizer: "
                + ", ".join(changed)
                + ". Set warm_start=False to fit a new model."
            )
        if current["device"] != self._fit_architecture["device"]:
            # A new device: move the model there. (An unchanged one is left alone: a GPU
            # model unpickled without CUDA trains on where it was loaded, on the CPU.)
            device = _resolve_device(self.device)
            if torch.device(device) != torch.device(net.device):
                # Refuses a precision the new device cannot run (fp16 off CUDA).
                _resolve_precision(net.precision, device, self.image_shape is not None)
                net.move_to(device)
        for name, value in self._training_settings(seed).items():
            setattr(net, name, value)
        for group in net.optimizer_.param_groups:
            group["lr"] = self.learning_rate
            group["weight_decay"] = self.weight_decay
        net.initialize_callbacks()

    def _fit(self, X, epochs, continuing, dataset_size, targets=None, anneal_rows=None):
        """Train on validated X for ``epochs`` epochs, new or continuing.

        ``targets`` are the rescaled factors of the supervised term (``None``
        without supervision); ``anneal_rows`` as in :meth:`_objective`. The
        fitted attributes are set once training has ended (or diverged, keeping
        the last finite step), never half-way; a first fit refused at its very
        first step sets none.
        """
        limit_torch_threads_to_dask_worker()
        prime_allocator()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        conditions = _condition_indices(
            self.condition_features, X.shape[1], getattr(self, "feature_names_in_", None)
        )
        modelled = np.setdiff1d(np.arange(X.shape[1]), conditions)
        if continuing:
            likelihood = self.likelihood_
            _check_bernoulli_range(X, likelihood, modelled)
            net = self.net_
            self._continue_with_current_params(net, seed)
            # The objective holds no state: rebuild it so that hyperparameters changed
            # with set_params (beta, free_bits, ...) apply to the continued training.
            net.criterion_ = self._objective(likelihood, dataset_size, len(modelled),
                                             anneal_rows)
        else:
            likelihood = self._resolve_likelihood(X, modelled)
            net = self._make_net(X.shape[1], likelihood, dataset_size, seed, conditions,
                                 anneal_rows)

        net.seed_generators(seed)
        fitted = (net, conditions, modelled, likelihood, seed, continuing)
        try:
            net.partial_fit(ArrayDataset(X, targets=targets), epochs=epochs)
        except TrainingDivergedError as exc:
            if not continuing and net.n_steps_ == 0:
                # Not one step taken: nothing was learnt, the estimator stays unfitted.
                raise TrainingDivergedError(_first_step_diverged(exc, X)) from None
            # The parameters are those of the last finite step: keep them usable.
            self._set_fitted(X, *fitted)
            raise
        self._set_fitted(X, *fitted)
        if net.interrupted_:
            warnings.warn(
                f"Training was interrupted after {self.n_iter_} completed epochs "
                f"({net.n_steps_} optimisation steps); the model keeps the weights of its "
                "last step.",
                TrainingInterruptedWarning,
                stacklevel=4,  # the caller of fit / partial_fit
            )
        return self

    def _warn_if_collapsed(self):
        """Warn when more than three quarters of the latent dimensions carry no information.

        Reads the last epoch's mean KL per dimension from the history (free).
        """
        if not len(self.history_) or "train_kl_per_dim" not in self.history_[-1]:
            return
        kl = np.asarray(self.history_[-1, "train_kl_per_dim"])
        active = int(np.sum(kl > _COLLAPSED_KL))
        if active >= max(1, -(-self.n_components // 4)):
            return
        warnings.warn(
            f"Posterior collapse: {self.n_components - active} of {self.n_components} latent "
            f"dimensions carry less than {_COLLAPSED_KL} nats of KL (the code ignores the "
            "data there). Try a KL warm-up (anneal_steps, e.g. a few epochs of steps), "
            "free_bits (e.g. 0.1), a lower regularisation weight or more epochs.",
            PosteriorCollapseWarning,
            stacklevel=4,  # the caller of fit (through scikit-learn's _fit_context)
        )

    def _set_fitted(self, X, net, conditions, modelled, likelihood, seed, continuing):
        """Set the fitted attributes of a trained ``net``."""
        if not continuing:
            self.precision_ = net.precision
            self.likelihood_ = likelihood
            self.condition_indices_ = conditions
            self.modelled_indices_ = modelled
            self._score_seed = seed
            self._sample_dtype = _output_dtype(X.dtype)
            self._n_features_out = self.n_components
            self._fit_architecture = self._architecture()
        else:  # a warm start may have moved the model (see _continue_with_current_params)
            self._fit_architecture = {**self._fit_architecture, "device": self.device}
        self.net_ = net
        self.regularizer_scale_ = net.criterion_.regularizer_scale
        self.n_iter_ = len(net.history)

    def _resolve_likelihood(self, X, modelled):
        """``"auto"``: Bernoulli for data (``modelled`` columns) in [0, 1], else Gaussian."""
        if self.likelihood != "auto":
            _check_bernoulli_range(X, self.likelihood, modelled)
            return self.likelihood
        if X.dtype == np.bool_:
            return "bernoulli"
        x_min, x_max = _value_range(X, modelled)
        return "bernoulli" if x_min >= 0 and x_max <= 1 else "gaussian"

    def _decode(self, Z, dtype, method):
        """Decoder means for rows of Z (codes, then conditions) in fixed-size batches, as ``dtype``.

        With conditions, the result has X's layout: the means in the modelled
        columns, the conditions of Z in theirs.
        """
        decode, k = self.net_.decode, self.n_components
        conditional = len(self.condition_indices_) > 0

        def mean(z):
            decoded = decode(z[:, :k], z[:, k:] if conditional else None)
            return decoder_mean(decoded, self.likelihood_)

        means = _check_finite_output(self.net_.infer_rows(Z, mean), method)
        if not conditional:
            return means.astype(dtype, copy=False)
        X = np.empty((len(Z), self.n_features_in_), dtype=dtype)
        X[:, self.modelled_indices_] = means
        X[:, self.condition_indices_] = Z[:, k:]
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _silent(*args, **kwargs):
    """A ``sink`` for skorch callbacks that prints nothing."""
