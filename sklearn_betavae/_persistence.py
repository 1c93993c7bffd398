"""Safe model files: the weights in safetensors, everything else in JSON.

A pickle or joblib file holds everything, but loading one runs code that the
file names, so it is only safe for files you trust. :func:`save` writes one
`safetensors <https://huggingface.co/docs/safetensors>`_ file instead: the
tensors as raw little-endian numbers, and the rest (estimator class,
constructor parameters, fitted attributes, training history, format and
package versions) as one JSON document in the file's ``__metadata__``.
:func:`load` reads it with ``safetensors`` and ``json`` only: no pickle, no
``torch.load``, no import of a name found in the file (classes go through an
allow-list). A SHA-256 digest of the JSON and the tensors, stored beside the
JSON, detects truncated or modified files (it is a check of integrity, not a
signature: whoever can write the file can write a matching digest).

What a file holds is decided in two tables: ``_TAGGED_VALUES`` (parameter
values JSON cannot hold as they are) and ``_FITTED_ATTRIBUTES`` (the
fitted state besides the net). The net is rebuilt with the estimator's own
``_make_net`` and given the stored weights.
"""

import hashlib
import json
import os
import warnings
from numbers import Integral

import numpy as np
import torch
from skorch.exceptions import DeviceWarning
from skorch.history import History
from sklearn.utils.validation import check_is_fitted

from ._base import _LEGACY_FITTED, _LEGACY_PARAMS
from ._beta_tcvae import BetaTCVAE
from ._beta_vae import BetaVAE
from ._dip_vae import DIPVAE
from ._factor_vae import FactorVAE
from ._net import loading_device, portable_precision

# Version of the file layout; load refuses files of a newer one.
_FORMAT_VERSION = 1
# Keys of the safetensors ``__metadata__``: the JSON document and its digest.
_DOCUMENT_KEY = "sklearn_betavae"
_DIGEST_KEY = "sklearn_betavae.sha256"
# The classes a file may name: the only ones load ever instantiates.
_ESTIMATORS = {cls.__name__: cls for cls in (BetaVAE, BetaTCVAE, DIPVAE, FactorVAE)}
# Net attribute holding the encoder and decoder: always saved. The net's other
# modules (FactorVAE's discriminator) and its optimizers are the training state.
_MODEL_MODULE = "module"
# Key marking a tagged value in the JSON: {"$type": tag, "value": ...}.
_TAG = "$type"


class _Unstorable(ValueError):
    """A value that a safe file cannot hold."""


# --- Parameter values ---------------------------------------------------------------------------


def _encode_array(array, encode):
    if array.dtype.kind not in "biufU":
        raise _Unstorable(f"an array of dtype {array.dtype}")
    return {"dtype": array.dtype.str, "data": array.tolist()}


def _decode_array(value, decode):
    dtype = np.dtype(value["dtype"])
    if dtype.kind not in "biufU":
        raise ValueError(f"an array of dtype {dtype} is not allowed")
    return np.asarray(value["data"], dtype=dtype)


def _encode_dict(mapping, encode):
    if not all(isinstance(key, str) for key in mapping):
        raise _Unstorable("a dict with keys that are not strings")
    return {key: encode(item) for key, item in mapping.items()}


def _encode_random_state(random_state, encode):
    name, keys, position, has_gauss, cached_gaussian = random_state.get_state()
    return [name, keys.tolist(), position, has_gauss, cached_gaussian]


def _decode_random_state(value, decode):
    name, keys, position, has_gauss, cached_gaussian = value
    random_state = np.random.RandomState()
    random_state.set_state(
        (name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian)
    )
    return random_state


# Values that JSON cannot hold as they are, stored as {"$type": tag, "value": encode(value)}
# and read back by decode (both get the recursive codec for nested values). None, bool, int,
# float, str and lists are stored as they are; numpy scalars as the Python number they hold.
# A class-valued parameter (an optimizer, a custom encoder) belongs here as a row whose encode
# accepts only the classes of an explicit allow-list, stored by name, and whose decode maps the
# name back through that list: never an import of a name read from a file.
_TAGGED_VALUES = (
    # (tag, type, encode, decode)
    ("tuple", tuple, lambda v, enc: [enc(x) for x in v], lambda v, dec: tuple(map(dec, v))),
    ("dict", dict, _encode_dict, lambda v, dec: {key: dec(x) for key, x in v.items()}),
    ("ndarray", np.ndarray, _encode_array, _decode_array),
    ("torch.device", torch.device, lambda v, enc: str(v), lambda v, dec: torch.device(v)),
    ("RandomState", np.random.RandomState, _encode_random_state, _decode_random_state),
)

# What to do about a parameter whose value no row above can store, by parameter name.
_UNSTORABLE_ADVICE = {
    "callbacks": "set_params(callbacks=None) before saving",
    "encoder": "a custom encoder class is code, which a safe file does not hold",
    "decoder": "a custom decoder class is code, which a safe file does not hold",
    "optimizer": "set_params(optimizer='adam' or 'adamw') before saving",
}


def _encode_value(value):
    """``value`` as JSON data, tagged where JSON has no such type; raises ``_Unstorable``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biufU":
        return value.item()
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, Integral) else float(value)
    if isinstance(value, list):
        return [_encode_value(item) for item in value]
    for tag, kind, encode, _ in _TAGGED_VALUES:
        if type(value) is kind:
            return {_TAG: tag, "value": encode(value, _encode_value)}
    raise _Unstorable(f"a {type(value).__module__}.{type(value).__qualname__}")


def _decode_value(value):
    """The inverse of :func:`_encode_value`; unknown tags raise a ``ValueError``."""
    if isinstance(value, list):
        return [_decode_value(item) for item in value]
    if not isinstance(value, dict):
        return value
    decoders = {tag: decode for tag, _, _, decode in _TAGGED_VALUES}
    tag = value.get(_TAG)
    if tag not in decoders or set(value) != {_TAG, "value"}:
        raise ValueError(f"unknown value type {tag!r}")
    return decoders[tag](value["value"], _decode_value)


def _encode_params(estimator):
    """The constructor parameters as JSON data; a clear error for any that cannot be stored."""
    encoded = {}
    for name, value in estimator.get_params(deep=False).items():
        try:
            encoded[name] = _encode_value(value)
        except _Unstorable as exc:
            advice = _UNSTORABLE_ADVICE.get(
                name, f"set {name} to numbers, strings, lists or tuples before saving"
            )
            raise ValueError(
                f"Cannot save {type(estimator).__name__}: parameter {name}={value!r} holds "
                f"{exc}, which a safe file cannot store: {advice}, or use pickle or joblib "
                "(for files you trust only)."
            ) from None
    return encoded


# --- Fitted attributes --------------------------------------------------------------------------


def _count(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _feature_names(value):
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError("expected a list of strings")
    return np.asarray(value, dtype=object)


def _likelihood(value):
    options = BetaVAE._parameter_constraints["likelihood"][0].options - {"auto"}
    if value not in options:
        raise ValueError(f"expected one of {sorted(options)}, got {value!r}")
    return value


def _indices(value):
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
    ):
        raise ValueError("expected a list of column indices")
    return np.asarray(value, dtype=np.intp)


def _precision(value):
    options = BetaVAE._parameter_constraints["precision"][0].options - {"auto"}
    if value not in options:
        raise ValueError(f"expected one of {sorted(options)}, got {value!r}")
    return value


def _positive(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return float(value)


def _sample_dtype(value):
    dtypes = {"float32": np.float32, "float64": np.float64}
    if value not in dtypes:
        raise ValueError(f"expected 'float32' or 'float64', got {value!r}")
    return dtypes[value]


def _architecture(value):
    value = _decode_value(value)
    if not isinstance(value, dict):
        raise ValueError("expected a dict of parameters")
    return value


# Every attribute a fit sets besides the constructor parameters and ``net_`` (rebuilt from the
# tensors and the "net" section of the file), as name: (encode, decode). A new fitted
# attribute must be added here: tests/test_persistence.py fails until it is.
_FITTED_ATTRIBUTES = {
    "n_features_in_": (int, _count),
    "feature_names_in_": (lambda names: names.tolist(), _feature_names),
    "likelihood_": (str, _likelihood),
    "precision_": (str, _precision),
    "regularizer_scale_": (float, _positive),
    "condition_indices_": (lambda v: [int(i) for i in v], _indices),
    "modelled_indices_": (lambda v: [int(i) for i in v], _indices),
    "n_iter_": (int, _count),
    "n_samples_seen_": (int, _count),
    "_anneal_rows": (int, _count),
    "_score_seed": (int, _count),
    "_sample_dtype": (lambda dtype: np.dtype(dtype).name, _sample_dtype),
    "_n_features_out": (int, _count),
    "_fit_architecture": (_encode_value, _architecture),
    # Not fitted state, but kept as pickle keeps it: set_output's configuration.
    "_sklearn_output_config": (_encode_value, _decode_value),
}
# Attributes a fitted estimator may lack (DataFrame input, set_output; _anneal_rows, the
# rows a fractional warm-up counts, in files written before it existed).
_OPTIONAL_ATTRIBUTES = ("feature_names_in_", "_sklearn_output_config", "_anneal_rows")
# Fitted attributes that are not JSON: rebuilt by load.
_REBUILT_ATTRIBUTES = ("net_",)


# --- Tensors ------------------------------------------------------------------------------------


def _net_tensors(net, include_optimizer):
    """Tensors to save, named ``<net attribute>.<state_dict key>``, on the CPU."""
    modules = net._modules if include_optimizer else [_MODEL_MODULE]
    tensors = {
        f"{name}_.{key}": value
        for name in modules
        for key, value in getattr(net, f"{name}_").state_dict().items()
    }
    for name in net._optimizers if include_optimizer else ():
        for index, state in getattr(net, f"{name}_").state_dict()["state"].items():
            for key, value in state.items():
                if not torch.is_tensor(value):
                    raise ValueError(
                        f"Cannot save the state of {name}: its entry {key!r} is not a tensor. "
                        "Save with include_optimizer=False."
                    )
                tensors[f"{name}_.state.{index}.{key}"] = value
    return {name: t.detach().cpu().contiguous() for name, t in tensors.items()}


def _digest(document, tensors):
    """SHA-256 of the JSON document and of every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(document.encode())
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_tensors(tensors, expected, path):
    """Refuse missing, unexpected and misshapen tensors, naming them."""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{os.fspath(path)!r} does not match its model: "
            + "; ".join(
                f"{what} tensors {names[:5]}{' ...' if len(names) > 5 else ''}"
                for what, names in (("missing", missing), ("unexpected", extra))
                if names
            )
            + "."
        )
    for name, (shape, dtype) in expected.items():
        if shape is not None and tuple(tensors[name].shape) != tuple(shape):
            raise ValueError(
                f"{os.fspath(path)!r}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                f"the model expects {tuple(shape)}."
            )
        if tensors[name].dtype != dtype:
            raise ValueError(
                f"{os.fspath(path)!r}: tensor {name!r} has dtype {tensors[name].dtype}, "
                f"the model expects {dtype}."
            )


def _load_tensors(net, tensors, include_optimizer, path):
    """Give the freshly built ``net`` the stored weights (and training state)."""
    modules = net._modules if include_optimizer else [_MODEL_MODULE]
    expected = {
        f"{name}_.{key}": (value.shape, value.dtype)
        for name in modules
        for key, value in getattr(net, f"{name}_").state_dict().items()
    }
    optimizer_states = {}
    for name in net._optimizers if include_optimizer else ():
        params = [p for group in getattr(net, f"{name}_").param_groups for p in group["params"]]
        prefix = f"{name}_.state."
        for tensor_name, tensor in tensors.items():
            index, _, key = tensor_name[len(prefix):].partition(".")
            if tensor_name.startswith(prefix) and index.isdigit() and int(index) < len(params):
                # Step counts are scalars; moments have the shape of their parameter.
                param = params[int(index)]
                shape = None if tensor.dim() == 0 else param.shape
                expected[tensor_name] = (shape, tensor.dtype)
                if tensor.shape == param.shape and tensor.dim() > 1:
                    # The file holds contiguous tensors; a moment takes its parameter's memory
                    # format (channels_last convolutions), which the fused update reads as is.
                    tensor = torch.empty_like(param, dtype=tensor.dtype).copy_(tensor)
                optimizer_states.setdefault(name, {}).setdefault(int(index), {})[key] = tensor
    _check_tensors(tensors, expected, path)
    for name in modules:
        prefix = f"{name}_."
        getattr(net, f"{name}_").load_state_dict(
            {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        )
    for name, state in optimizer_states.items():
        optimizer = getattr(net, f"{name}_")
        # Hyperparameters (param_groups) come from the current parameters, as in a warm start.
        optimizer.load_state_dict(
            {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}
        )


def _load_grad_scalers(net, states, name):
    """Give the net's fp16 gradient scalers their stored loss scales.

    A net rebuilt without them (fp16 loaded where there is no CUDA runs in
    fp32) has nothing to restore.
    """
    if not isinstance(states, dict):
        raise ValueError(f"{name}: invalid gradient scaler states.")
    scalers = net._grad_scaler_names()
    for attribute, state in states.items():
        if attribute not in scalers:
            continue
        scaler = getattr(net, attribute)
        numbers = isinstance(state, dict) and all(
            isinstance(value, (int, float)) and not isinstance(value, bool)
            for value in state.values()
        )
        if not numbers or set(state) != set(scaler.state_dict()):
            raise ValueError(f"{name}: invalid state of the gradient scaler {attribute}.")
        scaler.load_state_dict(state)


# --- Reading and writing -----------------------------------------------------------------------


def _import_safetensors():
    """The ``safetensors`` package, or an ImportError saying how to install it."""
    try:
        import safetensors
        import safetensors.torch
    except ImportError as exc:
        raise ImportError(
            "sklearn_betavae.save and sklearn_betavae.load need the safetensors package: "
            'pip install safetensors (or pip install "sklearn-betavae[safetensors]").'
        ) from exc
    return safetensors


def _json_default(value):
    """Numpy scalars and arrays, and tensors, in the history: as Python numbers and lists."""
    if isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biuf":
        return value.tolist()
    if torch.is_tensor(value):
        return value.tolist()
    raise _Unstorable(f"a {type(value).__module__}.{type(value).__qualname__}")


def _estimator_from(document, tensors, path):
    """Build the fitted estimator that ``document`` and ``tensors`` describe."""
    name = repr(os.fspath(path))
    cls = _ESTIMATORS.get(document["class"])
    if cls is None:
        raise ValueError(
            f"{name} holds an unknown estimator class {document['class']!r}; load reads "
            f"{', '.join(_ESTIMATORS)}."
        )
    known = set(cls().get_params(deep=False))
    unknown = sorted(set(document["params"]) - known)
    if unknown:
        raise ValueError(f"{name}: {cls.__name__} has no parameters {unknown}.")
    try:
        params = {key: _decode_value(value) for key, value in document["params"].items()}
    except ValueError as exc:
        raise ValueError(f"{name}: invalid parameter value ({exc}).") from None
    # A file of an earlier version: the model it holds, with the parameters added since.
    params = {**_LEGACY_PARAMS, **params}
    estimator = cls(**params)
    estimator._validate_params()

    fitted = {**_LEGACY_FITTED, **document["fitted"]}
    unknown = sorted(set(fitted) - set(_FITTED_ATTRIBUTES))
    missing = sorted(set(_FITTED_ATTRIBUTES) - set(fitted) - set(_OPTIONAL_ATTRIBUTES))
    if unknown or missing:
        raise ValueError(f"{name}: unknown fitted attributes {unknown}, missing {missing}.")
    for key, value in fitted.items():
        try:
            setattr(estimator, key, _FITTED_ATTRIBUTES[key][1](value))
        except ValueError as exc:
            raise ValueError(f"{name}: invalid fitted attribute {key} ({exc}).") from None

    net_state = document["net"]
    params = estimator.get_params(deep=False)
    # Build the network the model was fitted with, where this machine can run it, in
    # the precision it resolved to when fitted (not "auto" resolved anew here).
    device = loading_device(net_state["device"])
    precision = portable_precision(estimator.precision_, device)
    estimator.set_params(**{**estimator._fit_architecture, "device": device,
                            "precision": precision})
    net = estimator._make_net(
        estimator.n_features_in_,
        estimator.likelihood_,
        estimator.n_samples_seen_,
        estimator._score_seed,
        estimator.condition_indices_,
    )
    estimator.set_params(**params)
    estimator.net_ = net
    estimator._adopt_net_precision()
    _load_tensors(net, tensors, net_state["training_state"], path)
    _load_grad_scalers(net, net_state.get("grad_scalers", {}), name)
    if not isinstance(net_state["history"], list):
        raise ValueError(f"{name}: the training history is not a list of epochs.")
    net.history = History(net_state["history"])
    net.n_steps_ = _count(net_state["n_steps"])
    net.batch_size = _count(net_state["batch_size"])
    return estimator


# --- Public functions ---------------------------------------------------------------------------


def save(estimator, path, *, include_optimizer=False):
    """Save a fitted model to a safetensors file that loading cannot turn into code.

    The file holds the encoder and decoder weights as tensors and, as JSON,
    the estimator's class, constructor parameters, fitted attributes, training
    history, and format and package versions, with a SHA-256 digest of it all.
    Read it back with :func:`load`. Unlike pickle or joblib, whose files run
    code when loaded, it is safe to load a file from an untrusted source.

    Parameters
    ----------
    estimator : BetaVAE, BetaTCVAE, DIPVAE or FactorVAE
        A fitted model. Its parameters must be storable as JSON: numbers,
        strings, booleans, None, lists, tuples, dicts, numpy arrays and
        scalars, a ``torch.device`` or a ``RandomState``. Skorch callbacks
        cannot be stored: ``set_params(callbacks=None)`` first.
    path : str or os.PathLike
        File to write (``.safetensors`` is the usual extension).
    include_optimizer : bool, default=False
        Also store the training state: the optimizer's state (Adam's moments
        and step counts) and, for :class:`FactorVAE`, the discriminator and
        its optimizer. With it, training continued after :func:`load` (with
        ``warm_start=True`` or ``partial_fit``) is exactly the training of the
        saved model continued; without it, training continues from the
        weights with a fresh optimizer state and, for FactorVAE, a
        discriminator initialised anew (from the model's seed). The default
        file is smaller: the optimizer state is twice the size of the
        weights, and for FactorVAE the discriminator adds its weights and
        its own optimizer state (tens of megabytes for the paper's six layers
        of 1000 units). With ``precision="fp16"`` the loss scales of the
        gradient scalers are stored too.

    Returns
    -------
    None
        The model is written to ``path``.

    See Also
    --------
    load : Read a file written by this function.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE, load, save
    >>> X = load_digits().data[:200] / 16.0
    >>> vae = BetaVAE(n_components=2, hidden_layer_sizes=(16,), max_epochs=1,
    ...               random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "vae.safetensors")
    ...     save(vae, path)
    ...     restored = load(path)
    >>> bool((restored.transform(X) == vae.transform(X)).all())
    True
    """
    safetensors = _import_safetensors()
    from . import __version__

    if _ESTIMATORS.get(type(estimator).__name__) is not type(estimator):
        raise TypeError(
            f"save writes {', '.join(_ESTIMATORS)} models; got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    net = estimator.net_
    params = _encode_params(estimator)  # first: its errors name the parameter and the fix
    fitted = {
        name: encode(getattr(estimator, name))
        for name, (encode, _) in _FITTED_ATTRIBUTES.items()
        if hasattr(estimator, name)
    }
    document = {
        "format_version": _FORMAT_VERSION,
        "sklearn_betavae_version": __version__,
        "torch_version": torch.__version__,
        "class": type(estimator).__name__,
        "params": params,
        "fitted": fitted,
        "net": {
            "device": str(net.device),
            "batch_size": int(net.batch_size),  # inference runs in batches of this size
            "n_steps": int(net.n_steps_),
            "training_state": bool(include_optimizer),
            "history": list(net.history),
        },
    }
    if include_optimizer:  # fp16 loss scales (and growth trackers): numbers, JSON
        document["net"]["grad_scalers"] = {
            name: getattr(net, name).state_dict() for name in net._grad_scaler_names()
        }
    try:
        text = json.dumps(document, default=_json_default, separators=(",", ":"))
    except _Unstorable as exc:
        raise ValueError(
            f"Cannot save {type(estimator).__name__}: its training history holds {exc}, which "
            "a safe file cannot store; use pickle or joblib (for files you trust only)."
        ) from None
    tensors = _net_tensors(net, include_optimizer)
    metadata = {_DOCUMENT_KEY: text, _DIGEST_KEY: _digest(text, tensors)}
    data = safetensors.torch.save(tensors, metadata=metadata)
    with open(path, "wb") as file:
        file.write(data)


def load(path):
    """Load a model saved with :func:`save`.

    Reads the file with ``safetensors`` and ``json`` only: nothing in it is
    executed or imported, and the class it names must be one of the
    package's estimators. The loaded model's ``transform``,
    ``inverse_transform``, ``score_samples``, ``rate_distortion``,
    ``kl_per_dim`` and ``sample(random_state=...)`` give bitwise the results
    of the saved one, and it can continue training (``warm_start=True`` or
    ``partial_fit``; see ``include_optimizer`` of :func:`save`). A model
    saved on a GPU loads on a machine without one, on the CPU, with a
    warning; its ``device`` parameter is kept as it was.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :func:`save`.

    Returns
    -------
    estimator : BetaVAE, BetaTCVAE, DIPVAE or FactorVAE
        The fitted model.

    Raises
    ------
    ValueError
        If the file is not a safetensors file, is truncated, was modified
        after saving (its digest does not match), was written in a newer
        format, or names an unknown class, parameter, attribute or tensor.
    OSError
        If the file cannot be read (``FileNotFoundError`` when it does not
        exist).

    See Also
    --------
    save : Write a fitted model to a safe file.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import DIPVAE, load, save
    >>> X = load_digits().data[:200] / 16.0
    >>> vae = DIPVAE(n_components=2, hidden_layer_sizes=(16,), max_epochs=1,
    ...              random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save(vae, os.path.join(folder, "vae.safetensors"))
    ...     restored = load(os.path.join(folder, "vae.safetensors"))
    >>> restored.n_iter_, restored.get_params() == vae.get_params()
    (1, True)
    """
    safetensors = _import_safetensors()
    open(path, "rb").close()  # the usual OSError for a missing or unreadable file
    name = repr(os.fspath(path))
    try:
        with safetensors.safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
            # Copies: safetensors' tensors may map the file, which can change after load.
            tensors = {key: file.get_tensor(key).clone() for key in file.keys()}
    except safetensors.SafetensorError as exc:
        raise ValueError(
            f"{name} is not a readable safetensors file (truncated or corrupted?): {exc}"
        ) from None
    if _DOCUMENT_KEY not in metadata:
        raise ValueError(
            f"{name} is a safetensors file but holds no sklearn_betavae model (no "
            f"{_DOCUMENT_KEY!r} metadata); write one with sklearn_betavae.save."
        )
    text = metadata[_DOCUMENT_KEY]
    try:
        document = json.loads(text)
        version = document["format_version"]
    except (ValueError, TypeError, KeyError):
        raise ValueError(f"{name} is corrupted: its model description is not valid.") from None
    if not isinstance(version, int) or version > _FORMAT_VERSION:
        raise ValueError(
            f"{name} was written in file format version {version!r} (by sklearn-betavae "
            f"{document.get('sklearn_betavae_version')}); this version reads format "
            f"{_FORMAT_VERSION} and older: upgrade sklearn-betavae to load it."
        )
    if metadata.get(_DIGEST_KEY) != _digest(text, tensors):
        raise ValueError(
            f"{name} is corrupted or was modified after saving: the SHA-256 digest of its "
            "contents does not match the one saved with it."
        )
    try:
        return _estimator_from(document, tensors, path)
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise ValueError(
            f"{name}: its model description is incomplete or invalid ({exc!r})."
        ) from None
