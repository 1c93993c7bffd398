"""Property-based tests of every estimator on fuzzed shapes, dtypes and values (hypothesis).

Tiny models, one epoch: the properties are about the contract, not the quality of the fit.

- ``fit`` rejects exactly the invalid X (NaN, inf, beyond float32, outside [0, 1] for a
  Bernoulli likelihood) with its message and stays unfitted; otherwise it trains, or
  diverges with ``TrainingDivergedError``, and in both cases keeps finite weights.
- ``transform``, ``inverse_transform``, ``score_samples``, ``score`` and ``sample`` then give
  finite arrays of the right shape and dtype (float32 for float32 input, else float64;
  scores float64) or say that their outputs overflow float32: never a raw torch error,
  never NaN. The same on new X and codes Z of any kind, with the input errors of the
  package where the input is invalid.
- A row's results are bitwise the same in any subset and order of the rows of X.

The settings profiles (a fixed, derandomised ``ci`` set by default, ``dev`` to explore) are
in ``conftest.py``.
"""

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, event, example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from sklearn_betavae import DIPVAE, BetaTCVAE, BetaVAE, FactorVAE
from sklearn_betavae.exceptions import TrainingDivergedError

# scikit-learn's finiteness check sums X: float32 values near the limit overflow the sum.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in reduce")

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_DTYPES = (np.float32, np.float64, np.uint8, np.bool_)
_UNIT_INTERVAL_LIKELIHOODS = ("bernoulli", "continuous_bernoulli")
_LIKELIHOODS = ("auto", "gaussian", *_UNIT_INTERVAL_LIKELIHOODS)
# Float data: drawn by numpy from a drawn seed ("unit" ... "non_finite"), or value by value
# by hypothesis ("drawn": its edge cases, subnormals and the float32 limits among them).
_FLOAT_KINDS = (
    "unit", "binary", "normal", "negative", "large", "huge", "beyond_float32", "non_finite",
    "drawn",
)
# Data on which every model fits without a validation error (given a suitable likelihood).
_BENIGN_KINDS = ("unit", "binary", "normal", "negative")
# The only error a fitted model may raise on valid input: its outputs overflow float32.
_OUTPUT_ERROR = "produced non-finite values"


# --- Strategies -------------------------------------------------------------------------------


@st.composite
def estimators(draw, likelihoods=_LIKELIHOODS):
    """One of the four estimators, tiny (1 to 3 components, one hidden layer), one epoch."""
    estimator = draw(st.sampled_from([BetaVAE, BetaTCVAE, DIPVAE, FactorVAE]))
    params = dict(
        n_components=draw(st.integers(1, 3)),
        hidden_layer_sizes=draw(st.sampled_from([(4,), (8,), (13,)])),
        likelihood=draw(st.sampled_from(likelihoods)),
        # Down to one row per batch, and up to batches larger than any X drawn here.
        batch_size=draw(st.sampled_from([1, 2, 3, 8, 64])),
        max_epochs=1,
        random_state=draw(st.integers(0, 2**31 - 2)),
    )
    if estimator is BetaTCVAE:
        params["tc_estimator"] = draw(st.sampled_from(["mss", "mws"]))
    else:
        params["free_bits"] = draw(st.sampled_from([0.0, 0.5]))
    if estimator is DIPVAE:
        params["dip_type"] = draw(st.sampled_from(["i", "ii"]))
    if estimator is FactorVAE:
        params["discriminator_hidden_layer_sizes"] = (8,)
    return estimator(**params)


def _float_values(draw, kind, shape, dtype):
    """Float data of the given kind, as float64 (``"drawn"``: already as ``dtype``)."""
    if kind == "drawn":
        width = 32 if dtype == np.float32 else 64
        elements = st.floats(-_FLOAT32_MAX, _FLOAT32_MAX, width=width)
        return draw(arrays(dtype, shape, elements=elements))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    signs = rng.choice([-1.0, 1.0], shape)
    if kind == "unit":
        return rng.random(shape)
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(float)
    if kind == "normal":
        return rng.standard_normal(shape) * draw(st.sampled_from([1.0, 30.0]))
    if kind == "negative":
        return -rng.random(shape) * draw(st.sampled_from([1.0, 1e3]))
    if kind == "large":
        return signs * rng.uniform(1e5, 1e6, shape)
    if kind == "huge":  # up to the largest float32
        return signs * rng.uniform(1e37, _FLOAT32_MAX, shape)
    if kind == "beyond_float32":  # inf once cast to float32
        return signs * 10.0 ** rng.uniform(38.6, 300, shape)
    values = rng.random(shape)  # non_finite
    values.flat[rng.integers(values.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return values


@st.composite
def datasets(draw, kinds=_FLOAT_KINDS, n_features=st.integers(1, 20)):
    """X of 1 to 50 rows and 1 to 20 features: float32, float64, uint8 or bool, some
    columns possibly constant."""
    shape = (draw(st.integers(1, 50)), draw(n_features))
    dtype = draw(st.sampled_from(_DTYPES))
    if dtype == np.bool_:
        X = draw(arrays(np.bool_, shape))
    elif dtype == np.uint8:
        top = draw(st.sampled_from([1, 255]))  # binary images or grey levels
        X = draw(arrays(np.uint8, shape, elements=st.integers(0, top)))
    else:
        with np.errstate(over="ignore"):  # beyond_float32 in float32 is inf: wanted
            X = np.asarray(_float_values(draw, draw(st.sampled_from(kinds)), shape, dtype), dtype)
    constant = draw(st.lists(st.integers(0, shape[1] - 1), max_size=shape[1], unique=True))
    X[:, constant] = X[:1, constant]
    return X


@st.composite
def row_subsets(draw, n_rows):
    """Row indices: any non-empty subset of ``range(n_rows)``, in any order."""
    order = draw(st.permutations(range(n_rows)))
    return np.array(order[: draw(st.integers(1, n_rows))])


# --- Helpers ----------------------------------------------------------------------------------


def _expected_input_error(X, likelihood=None):
    """The message with which a method must reject X, or None if X is valid for it.

    ``likelihood``: that of a method that needs X in [0, 1] for a Bernoulli likelihood
    (``fit``, ``score_samples``).
    """
    if X.dtype.kind == "f":
        if np.isnan(X).any():
            return "Input X contains NaN"
        if np.isinf(X).any():
            return "Input X contains infinity"
        if np.abs(X).max() > _FLOAT32_MAX:
            return "beyond the float32 range"
    if likelihood in _UNIT_INTERVAL_LIKELIHOODS and X.dtype != np.bool_:
        if X.min() < 0 or X.max() > 1:
            return f"likelihood={likelihood!r} needs X in [0, 1]"
    return None


def _in_unit_interval(X):
    return X.dtype == np.bool_ or (X.min() >= 0 and X.max() <= 1)


def _output_dtype(X):
    return np.float32 if X.dtype == np.float32 else np.float64


def _finite_or_clear_error(method, *args, expected=None):
    """``method(*args)``, checked finite, or None if it raised the package's clear error.

    ``expected``: the message the method must raise (invalid input); without it, the method
    may only say that its outputs overflow. Any other exception (a raw torch RuntimeError,
    an AttributeError...) propagates and fails the test.
    """
    name = method.__name__
    if expected is not None:
        with pytest.raises(ValueError, match=re.escape(expected)):
            method(*args)
        event(f"{name}: rejects the input")
        return None
    try:
        result = method(*args)
    except ValueError as exc:
        assert f"{name} produced non-finite values" in str(exc) or (
            name in ("score", "score_samples") and _OUTPUT_ERROR in str(exc)
        ), repr(exc)
        event(f"{name}: outputs overflow")
        return None
    assert np.all(np.isfinite(result)), f"{name} returned non-finite values"
    return result


def _fit(vae, X):
    """Fit: "trained", "diverged" (a TrainingDivergedError after some steps, which keeps
    the model) or "unfitted" (one at the very first step, which leaves none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. posterior collapse after one epoch
        try:
            assert vae.fit(X) is vae
        except TrainingDivergedError as exc:
            if "at the first step of training" in str(exc):
                assert "largest absolute value" in str(exc) and "stays unfitted" in str(exc)
                with pytest.raises(NotFittedError):
                    vae.transform(X)
                event("fit: refused at the first step, unfitted")
                return "unfitted"
            assert "training diverged" in str(exc)
            event("fit: diverged")
            return "diverged"
    event("fit: trained")
    return "trained"


def _fit_on_ordinary_data(data, n_features=st.integers(1, 20)):
    """Draw X of ordinary values and a model whose likelihood accepts it; fit (or diverge)."""
    X = data.draw(datasets(kinds=_BENIGN_KINDS, n_features=n_features), label="X")
    likelihoods = _LIKELIHOODS if _in_unit_interval(X) else ("auto", "gaussian")
    vae = data.draw(estimators(likelihoods), label="vae")
    # A diverged fit keeps a model: the properties hold for it too.
    assume(_fit(vae, X) != "unfitted")
    return vae, X


def _assert_finite_weights(vae):
    modules = [vae.module_] + ([vae.discriminator_] if isinstance(vae, FactorVAE) else [])
    for module in modules:
        for name, param in module.named_parameters():
            assert torch.isfinite(param).all(), f"non-finite weights in {name}"


# --- Properties -------------------------------------------------------------------------------


def _tiny(estimator, **params):
    defaults = dict(n_components=2, hidden_layer_sizes=(4,), max_epochs=1, random_state=0)
    if estimator is FactorVAE:
        defaults["discriminator_hidden_layer_sizes"] = (8,)
    return estimator(**{**defaults, **params})


# The two silent-NaN-model reproductions of issue 12 (gradients overflow at the first step).
@example(vae=_tiny(BetaTCVAE, n_components=1, hidden_layer_sizes=(8,)),
         X=np.array([[295.0]], np.float32))
@example(vae=_tiny(BetaVAE, n_components=1, hidden_layer_sizes=(8,)), X=np.full((1, 12), -420.0))
# Every rejection, whatever the derandomised draws cover.
@example(vae=_tiny(BetaVAE), X=np.array([[0.5, np.nan]], np.float32))
@example(vae=_tiny(DIPVAE), X=np.array([[0.5], [-np.inf]]))
@example(vae=_tiny(FactorVAE), X=np.array([[1.0, -1e39]]))
@example(vae=_tiny(BetaTCVAE, likelihood="bernoulli"), X=np.array([[0.5, -0.5]]))
@example(vae=_tiny(DIPVAE, likelihood="continuous_bernoulli"), X=np.full((3, 2), 255, np.uint8))
# A single bool row in a batch of 64; constant columns at the float32 limit.
@example(vae=_tiny(FactorVAE, batch_size=64, likelihood="bernoulli"), X=np.ones((1, 5), bool))
@example(vae=_tiny(DIPVAE, likelihood="gaussian"), X=np.full((4, 3), 3.4e38, np.float32))
@given(vae=estimators(), X=datasets())
def test_every_method_gives_finite_results_or_a_clear_error(vae, X):
    # fit rejects exactly the invalid X, else keeps finite weights; every method: finite or clear.
    vae = clone(vae)
    expected = _expected_input_error(X, vae.likelihood)
    if expected is not None:
        with pytest.raises(ValueError, match=re.escape(expected)):
            _fit(vae, X)
        event(f"fit: rejects X ({expected})")
        with pytest.raises(NotFittedError):
            vae.transform(X)
        return
    if _fit(vae, X) == "unfitted":
        return  # a clear error and no model (checked by _fit)
    _assert_finite_weights(vae)
    (n_samples, n_features), n_components = X.shape, vae.n_components

    Z = _finite_or_clear_error(vae.transform, X)
    if Z is not None:
        assert Z.shape == (n_samples, n_components) and Z.dtype == _output_dtype(X)
        X_back = _finite_or_clear_error(vae.inverse_transform, Z)
        if X_back is not None:
            assert X_back.shape == X.shape and X_back.dtype == _output_dtype(X)
    elbo = _finite_or_clear_error(vae.score_samples, X)
    if elbo is not None:
        assert elbo.shape == (n_samples,) and elbo.dtype == np.float64
        assert vae.score(X) == float(np.mean(elbo))
    else:
        _finite_or_clear_error(vae.score, X)
    samples = _finite_or_clear_error(vae.sample, 3, 0)
    if samples is not None:
        assert samples.shape == (3, n_features) and samples.dtype == _output_dtype(X)


@given(data=st.data())
def test_row_results_do_not_depend_on_the_other_rows(data):
    # A row's transform, score_samples and inverse_transform are bitwise the same in any subset,
    # whatever the number of features (matrix products round by position modulo 4 for some
    # widths) and the likelihood (vectorised and scalar sigmoid differ).
    vae, X = _fit_on_ordinary_data(data, n_features=st.integers(1, 20))
    Z = _finite_or_clear_error(vae.transform, X)
    elbo = _finite_or_clear_error(vae.score_samples, X)
    if Z is None or elbo is None:
        return
    rows = data.draw(row_subsets(len(X)), label="rows")
    assert_array_equal(vae.transform(X[rows]), Z[rows])
    assert_array_equal(vae.score_samples(X[rows]), elbo[rows])
    assert_array_equal(vae.inverse_transform(Z[rows]), vae.inverse_transform(Z)[rows])


@given(data=st.data())
def test_methods_on_new_data_give_finite_results_or_a_clear_error(data):
    # On any new X (or codes Z) each method is finite, rejects the input or says it overflows.
    vae, X = _fit_on_ordinary_data(data)
    X_new = data.draw(datasets(n_features=st.just(X.shape[1])), label="X_new")
    n_samples = len(X_new)

    Z = _finite_or_clear_error(vae.transform, X_new, expected=_expected_input_error(X_new))
    if Z is not None:
        assert Z.shape == (n_samples, vae.n_components) and Z.dtype == _output_dtype(X_new)
    elbo = _finite_or_clear_error(
        vae.score_samples, X_new, expected=_expected_input_error(X_new, vae.likelihood_)
    )
    if elbo is not None:
        assert elbo.shape == (n_samples,) and elbo.dtype == np.float64

    Z_new = data.draw(datasets(n_features=st.just(vae.n_components)), label="Z_new")
    X_back = _finite_or_clear_error(
        vae.inverse_transform, Z_new, expected=_expected_input_error(Z_new)
    )
    if X_back is not None:
        assert X_back.shape == (len(Z_new), X.shape[1]) and X_back.dtype == _output_dtype(Z_new)
