"""Scorers ``(estimator, X, y)`` for model selection with GridSearchCV.

Duck-typed: the disentanglement scorers need ``estimator.transform(X)``; the
rate-distortion scorers need ``estimator.rate_distortion(X)``, returning the
per-sample rate ``KL(q(z|x) || p(z))`` and distortion ``-E_q[log p(x|z)]`` in
nats, as the package's VAEs do (a Pipeline ending in one, or a meta-estimator
with ``best_estimator_``, is unwrapped).
"""

import inspect

import numpy as np
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_array


def _labelled_rows(X, y):
    """X and y restricted to the rows of y without NaN (unlabelled rows cannot be scored).

    pandas' nullable dtypes (``pd.NA`` for unknown values) count as NaN.
    """
    factors = np.asarray(y)
    if factors.dtype == object:
        try:
            factors = check_array(y, dtype=np.float64, ensure_all_finite="allow-nan",
                                  ensure_2d=False, input_name="y")
        except (TypeError, ValueError):
            return X, y  # not numeric: the metric says what is wrong
    if factors.dtype.kind != "f":
        return X, y
    complete = ~np.isnan(factors.reshape(len(factors), -1)).any(axis=1)
    if complete.all():
        return X, y
    if not complete.any():
        raise ValueError(
            "Every row of y has a NaN (unknown) factor: a disentanglement metric needs "
            "rows whose factors are all known."
        )
    return _safe_indexing(X, complete), factors[complete]


def _metric_kind(metric):
    """What a metric takes first: "factors" (and codes), "codes" alone, or an "estimator"."""
    try:
        parameters = list(inspect.signature(metric).parameters)
    except (TypeError, ValueError):
        return "factors"
    first = parameters[0] if parameters else None
    return first if first in ("codes", "estimator") else "factors"


class _DisentanglementScorer:
    """Scorer calling a disentanglement metric on an estimator's codes."""

    def __init__(self, metric, key, sign, kwargs):
        self._metric = metric
        self._key = key
        self._sign = sign
        self._kwargs = kwargs
        self._kind = _metric_kind(metric)

    def __call__(self, estimator, X, y=None):
        if self._kind == "estimator":
            result = self._metric(estimator, **self._kwargs)
        elif self._kind == "codes":
            result = self._metric(estimator.transform(X), **self._kwargs)
        else:
            if y is None:
                raise ValueError(
                    f"{self._name()} compares codes with the true factors: pass them as y, "
                    "e.g. GridSearchCV(...).fit(X, factors)."
                )
            X, y = _labelled_rows(X, y)
            result = self._metric(y, estimator.transform(X), **self._kwargs)
        if isinstance(result, dict):
            if self._key is None:
                raise ValueError(
                    f"{self._name()} returns several scores {sorted(result)}: pass key= "
                    "to make_disentanglement_scorer to choose one."
                )
            result = result[self._key]
        elif self._key is not None:
            raise ValueError(f"key={self._key!r} given but {self._name()} returns a single score.")
        return self._sign * float(result)

    def _name(self):
        return getattr(self._metric, "__name__", repr(self._metric))

    def __repr__(self):
        arguments = [self._name()]
        if self._key is not None:
            arguments.append(f"key={self._key!r}")
        if self._sign < 0:
            arguments.append("greater_is_better=False")
        arguments += [f"{name}={value!r}" for name, value in self._kwargs.items()]
        return f"make_disentanglement_scorer({', '.join(arguments)})"


def make_disentanglement_scorer(metric, *, key=None, greater_is_better=True, **kwargs):
    """Make a scorer ``(estimator, X, y)`` from a disentanglement metric.

    The scorer encodes ``X`` with ``estimator.transform`` and compares the
    codes with the true factors passed as ``y``, so that
    ``GridSearchCV(BetaVAE(), {"beta": [...]}, scoring=scorer).fit(X, factors)``
    selects by disentanglement on held-out samples. Rows of ``y`` with a NaN
    (factors unknown, as for the unlabelled rows of partial supervision, see
    ``supervision_weight``) are left out of the score. What the scorer calls
    depends on the name of the metric's first parameter:

    - ``factors`` (or any other name): ``metric(y, transform(X), **kwargs)``,
      e.g. :func:`mutual_info_gap`, :func:`dci`, :func:`sap_score`,
      :func:`modularity_explicitness`;
    - ``codes``: ``metric(transform(X), **kwargs)``, ``y`` unused, e.g.
      :func:`gaussian_total_correlation`, :func:`active_units`;
    - ``estimator``: ``metric(estimator, **kwargs)``, ``X`` and ``y`` unused,
      e.g. :func:`factor_vae_score` with ``sampler=`` in ``kwargs``: the
      score comes from fresh samples, the same for every fold.

    For a model fitted with ``condition_features``, ``transform(X)`` ends with
    the condition columns, and the metric sees them as codes: a condition that
    is one of the factors then counts as a perfectly disentangled code.
    :func:`udr_score` compares the codes alone.

    Parameters
    ----------
    metric : callable
        A metric of this module or one with the same signature.
    key : str, default=None
        The entry to return when ``metric`` returns a dict, e.g.
        ``"disentanglement"`` for :func:`dci`. Required for such metrics.
    greater_is_better : bool, default=True
        If False the scorer returns the negated metric, as
        :func:`sklearn.metrics.make_scorer` does, since model selection
        maximises scores (e.g. for :func:`gaussian_total_correlation`).
    **kwargs
        Passed on to ``metric`` (e.g. ``random_state=0`` for determinism).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``, picklable if ``metric``
        and ``kwargs`` are.

    See Also
    --------
    reconstruction_scorer, rate_scorer, elbo_scorer : The rate-distortion scores.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_betavae.metrics import dci, make_disentanglement_scorer, mutual_info_gap
    >>> rng = np.random.RandomState(0)
    >>> factors = rng.randint(4, size=(300, 2)).astype(float)
    >>> X = np.hstack([factors, 0.1 * rng.randn(300, 3)])
    >>> scoring = {"mig": make_disentanglement_scorer(mutual_info_gap),
    ...            "dci_d": make_disentanglement_scorer(dci, key="disentanglement",
    ...                                                 random_state=0)}
    >>> search = GridSearchCV(PCA(), {"n_components": [2, 3]}, scoring=scoring, refit="mig")
    >>> search.fit(X, factors).best_params_
    {'n_components': 2}
    """
    if not callable(metric):
        raise TypeError(f"metric must be callable, got {metric!r}.")
    return _DisentanglementScorer(metric, key, 1.0 if greater_is_better else -1.0, kwargs)


def _rate_distortion(estimator, X):
    """Per-sample rate and distortion of X under ``estimator``.

    A :class:`~sklearn.pipeline.Pipeline` ending in a VAE passes X through its
    other steps first; a meta-estimator with ``best_estimator_`` (a fitted
    search, :class:`~sklearn_betavae.model_selection.UDRSelector`) delegates to it.
    """
    while not hasattr(estimator, "rate_distortion"):
        if hasattr(estimator, "steps"):
            X, estimator = estimator[:-1].transform(X), estimator[-1]
        elif hasattr(estimator, "best_estimator_"):
            estimator = estimator.best_estimator_
        else:
            raise TypeError(
                f"{type(estimator).__name__} has no rate_distortion(X): the rate-distortion "
                "scorers need a fitted VAE, a Pipeline ending in one, or a meta-estimator "
                "with best_estimator_."
            )
    rate, distortion = estimator.rate_distortion(X)
    return np.asarray(rate, dtype=np.float64), np.asarray(distortion, dtype=np.float64)


def reconstruction_scorer(estimator, X, y=None):
    """Negative mean distortion ``-E_q(z|x)[log p(x|z)]`` of X, in nats.

    Higher is better (a better reconstruction), like scikit-learn's
    ``neg_*`` scorers.

    Parameters
    ----------
    estimator : object
        Fitted model with ``rate_distortion(X) -> (rate, distortion)``, a
        Pipeline ending in one (X goes through the other steps first), or a
        meta-estimator whose ``best_estimator_`` has it.
    X : array-like of shape (n_samples, n_features)
        Data to evaluate.
    y : Ignored
        Not used, present for API consistency by convention.

    Returns
    -------
    score : float
        ``-mean(distortion)``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.metrics import reconstruction_scorer
    >>> X = load_digits().data[:60] / 16
    >>> vae = BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=1, random_state=0)
    >>> reconstruction_scorer(vae.fit(X), X) < 0
    True
    """
    return -float(np.mean(_rate_distortion(estimator, X)[1]))


def rate_scorer(estimator, X, y=None):
    """Mean rate ``KL(q(z|x) || p(z))`` of X, in nats, reported as is.

    The rate is the information the code carries about ``x`` (an upper bound
    on ``I(x; z)``), the other axis of the rate-distortion trade-off that beta
    moves along. Neither more nor less is better in itself: use this scorer
    to report the rate in ``cv_results_``, not as ``refit=`` criterion (where
    it would select the largest rate).

    Parameters
    ----------
    estimator : object
        Fitted model with ``rate_distortion(X) -> (rate, distortion)``, a
        Pipeline ending in one (X goes through the other steps first), or a
        meta-estimator whose ``best_estimator_`` has it.
    X : array-like of shape (n_samples, n_features)
        Data to evaluate.
    y : Ignored
        Not used, present for API consistency by convention.

    Returns
    -------
    score : float
        ``mean(rate)``, non-negative.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.metrics import rate_scorer
    >>> X = load_digits().data[:60] / 16
    >>> vae = BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=1, random_state=0)
    >>> rate_scorer(vae.fit(X), X) >= 0
    True
    """
    return float(np.mean(_rate_distortion(estimator, X)[0]))


def elbo_scorer(estimator, X, y=None):
    """Mean evidence lower bound ``-(rate + distortion)`` of X, in nats.

    Higher is better. For the package's VAEs it equals ``estimator.score(X)``,
    the default criterion of :class:`~sklearn.model_selection.GridSearchCV`;
    named, it sits next to the other scores of a multi-metric search.

    Parameters
    ----------
    estimator : object
        Fitted model with ``rate_distortion(X) -> (rate, distortion)``, a
        Pipeline ending in one (X goes through the other steps first), or a
        meta-estimator whose ``best_estimator_`` has it.
    X : array-like of shape (n_samples, n_features)
        Data to evaluate.
    y : Ignored
        Not used, present for API consistency by convention.

    Returns
    -------
    score : float
        ``-mean(rate + distortion)``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.metrics import elbo_scorer, rate_scorer, reconstruction_scorer
    >>> X = load_digits().data[:60] / 16
    >>> scoring = {"elbo": elbo_scorer, "rate": rate_scorer,
    ...            "reconstruction": reconstruction_scorer}
    >>> vae = BetaVAE(n_components=2, hidden_layer_sizes=(16,), max_epochs=1, random_state=0)
    >>> search = GridSearchCV(vae, {"beta": [1.0, 4.0]}, scoring=scoring, refit="elbo", cv=2)
    >>> results = search.fit(X).cv_results_
    >>> sorted(key for key in results if key.startswith("mean_test"))
    ['mean_test_elbo', 'mean_test_rate', 'mean_test_reconstruction']
    """
    rate, distortion = _rate_distortion(estimator, X)
    return -float(np.mean(rate + distortion))
