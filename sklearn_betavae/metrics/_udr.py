"""Unsupervised Disentanglement Ranking (UDR, Duan et al. 2020).

Models of one setting trained from different seeds disentangle in the same
way when they disentangle at all, and entangle each in their own way
otherwise: the agreement between their codes, up to permutation and sign,
ranks them without labels. ``_udr_from_codes`` is the pure-array core;
``udr_score`` encodes X with each fitted model (``transform`` and
``kl_per_dim``, duck-typed; the condition columns a conditional model's
``transform`` appends are dropped) and calls it.
"""

import warnings
from numbers import Real

import numpy as np
from scipy.stats import rankdata
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ._utils import _check_codes

_CORRELATIONS = ("spearman", "lasso")
# disentanglement_lib's Lasso penalty for the "lasso" correlation matrix.
_LASSO_ALPHA = 0.1


def _spearman_matrix(ranks_a, ranks_b):
    """|Spearman correlation| of every code of a (rows) with every code of b (columns).

    Takes the column-wise ranks of the codes; a constant code correlates with
    nothing (0).
    """
    centred_a = ranks_a - ranks_a.mean(axis=0)
    centred_b = ranks_b - ranks_b.mean(axis=0)
    norms = np.outer(np.linalg.norm(centred_a, axis=0), np.linalg.norm(centred_b, axis=0))
    covariance = centred_a.T @ centred_b
    correlation = np.divide(covariance, norms, out=np.zeros_like(covariance), where=norms > 0)
    return np.abs(correlation)


def _lasso_matrix(codes_a, codes_b):
    """|Lasso weight| of each standardised code of a (rows) in predicting each code of b."""
    coef = Lasso(alpha=_LASSO_ALPHA).fit(codes_a, codes_b).coef_
    return np.abs(coef.reshape(codes_b.shape[1], codes_a.shape[1])).T


def _relative_strength(similarity):
    """Relative-strength score of a non-negative similarity matrix, in [0, 1].

    For each column, the square of its largest entry over its sum, averaged
    over columns; the same over rows; the mean of the two (Duan et al. 2020,
    as disentanglement_lib computes it). 1 when each row and column
    has a single non-zero entry (a permutation), ``1 / d`` for a constant
    ``d x d`` matrix. An all-zero row or column scores 0, and so does a
    matrix with no rows or no columns (nothing to agree on).
    """
    if similarity.size == 0:
        return 0.0
    halves = []
    for axis in (0, 1):
        total = similarity.sum(axis=axis)
        strength = np.divide(
            similarity.max(axis=axis) ** 2, total, out=np.zeros_like(total), where=total > 0
        )
        halves.append(strength.mean())
    return float(np.mean(halves))


def _check_udr_params(correlation, kl_threshold):
    if correlation not in _CORRELATIONS:
        raise ValueError(f"correlation must be 'spearman' or 'lasso', got {correlation!r}.")
    if not isinstance(kl_threshold, Real) or not kl_threshold >= 0:
        raise ValueError(f"kl_threshold must be a non-negative number, got {kl_threshold!r}.")


def _udr_from_codes(codes_list, kl_list, *, correlation="spearman", kl_threshold=0.01):
    """UDR of each model from its codes and the mean KL of each code dimension.

    Parameters
    ----------
    codes_list : list of array-like of shape (n_samples, n_codes_i)
        Codes (posterior means) of each model on the same samples.
    kl_list : list of array-like of shape (n_codes_i,)
        Mean KL divergence of each code dimension from the prior, in nats.
    correlation : {"spearman", "lasso"}, default="spearman"
        How two models' codes are compared.
    kl_threshold : float, default=0.01
        Code dimensions whose mean KL is not above it are dropped.

    Returns
    -------
    scores : ndarray of shape (n_models,)
        Median over the other models of the pairwise scores of each model.
    pairwise : ndarray of shape (n_models, n_models)
        ``pairwise[i, j]``: relative strength of the similarity matrix of
        model i's codes (rows) and model j's (columns); for ``"lasso"``, the
        weights of a regression of j's codes on i's. The diagonal is NaN.
    """
    _check_udr_params(correlation, kl_threshold)
    n_models = len(codes_list)
    if n_models < 2 or len(kl_list) != n_models:
        raise ValueError(
            f"UDR compares models with each other: it needs codes and KL of at least 2 "
            f"models, got {n_models} codes and {len(kl_list)} KL vectors."
        )
    codes_list = [_check_codes(codes) for codes in codes_list]
    n_samples = codes_list[0].shape[0]
    informative = []
    for i, (codes, kl) in enumerate(zip(codes_list, kl_list)):
        kl = np.asarray(kl, dtype=np.float64)
        if codes.shape[0] != n_samples:
            raise ValueError(
                f"All codes must be of the same samples: model 0 has {n_samples} rows, "
                f"model {i} has {codes.shape[0]}."
            )
        if kl.shape != (codes.shape[1],):
            raise ValueError(
                f"The KL of model {i} must have one value per code dimension "
                f"({codes.shape[1]}), got shape {kl.shape}."
            )
        informative.append(kl > kl_threshold)
    if not any(mask.any() for mask in informative):
        # A collapsed setting is a bad model, not an error: in a sweep over beta it
        # must rank last, not make the fit of all its seeds fail.
        warnings.warn(
            f"No code dimension of any model has a mean KL above kl_threshold="
            f"{kl_threshold}: every posterior has collapsed onto the prior on these "
            "samples, so the models agree on nothing and all score 0. Lower "
            "kl_threshold if it is too strict.",
            UndefinedMetricWarning,
        )

    # Standardise on all dimensions first, as disentanglement_lib does, then drop.
    codes_list = [
        StandardScaler().fit_transform(codes)[:, mask]
        for codes, mask in zip(codes_list, informative)
    ]
    if correlation == "spearman":
        ranks = [rankdata(codes, axis=0) for codes in codes_list]
    pairwise = np.full((n_models, n_models), np.nan)
    for i in range(n_models):
        for j in range(n_models):
            if i == j:
                continue
            if codes_list[i].shape[1] == 0 or codes_list[j].shape[1] == 0:
                pairwise[i, j] = 0.0
            elif correlation == "spearman":
                pairwise[i, j] = _relative_strength(_spearman_matrix(ranks[i], ranks[j]))
            else:
                pairwise[i, j] = _relative_strength(_lasso_matrix(codes_list[i], codes_list[j]))
    # Model j's score: the median of its column, the comparisons that end at it.
    scores = np.array([np.median(np.delete(pairwise[:, j], j)) for j in range(n_models)])
    return scores, pairwise


def _encode_with_kl(estimator, X, index):
    """Codes and per-dimension mean KL of one fitted model on X."""
    for method in ("transform", "kl_per_dim"):
        if not callable(getattr(estimator, method, None)):
            raise ValueError(
                f"estimators[{index}] ({type(estimator).__name__}) has no {method} method: "
                "UDR needs fitted VAEs with transform (posterior means) and kl_per_dim."
            )
    check_is_fitted(
        estimator,
        msg=f"estimators[{index}] (%(name)s) is not fitted yet: fit every model before "
        "computing its UDR.",
    )
    codes = np.asarray(estimator.transform(X))
    kl = np.asarray(estimator.kl_per_dim(X), dtype=np.float64)
    # A conditional model's transform appends its condition columns to the codes:
    # they are data passed through, the same for every model, not a code to compare.
    n_conditions = len(getattr(estimator, "condition_indices_", ()))
    if n_conditions and codes.ndim == 2:
        codes = codes[:, : codes.shape[1] - n_conditions]
    if kl.shape != codes.shape:
        conditions = f" without its {n_conditions} condition columns" if n_conditions else ""
        raise ValueError(
            f"estimators[{index}].kl_per_dim(X) has shape {kl.shape}, but its transform(X)"
            f"{conditions} has shape {codes.shape}: it must give one KL per sample and code "
            "dimension."
        )
    return codes, kl.mean(axis=0)


def udr_score(estimators, X, *, correlation="spearman", kl_threshold=0.01):
    """Unsupervised Disentanglement Ranking score of each of several fitted models.

    For models of one hyperparameter setting trained from different seeds,
    UDR (Duan et al. 2020) scores how much each model's representation
    agrees with the others' up to a permutation and sign flips of the
    dimensions: models that disentangle recover the same factors, one per
    dimension, while entangled ones mix them each in their own way. No
    labels are needed. Computed as in disentanglement_lib:

    1. encode X with each model (posterior means) and standardise each code;
    2. drop the uninformative dimensions of each model, those whose KL from
       the prior, averaged over X, is not above ``kl_threshold``;
    3. for every ordered pair of models (a, b), build the similarity matrix
       ``R`` of a's dimensions (rows) against b's (columns): the absolute
       Spearman rank correlations, or the absolute weights of a Lasso
       regression (``alpha=0.1``) of b's codes on a's;
    4. score it with the relative strength
       ``1/2 (mean_b max_a R_ab^2 / sum_a R_ab + mean_a max_b R_ab^2 / sum_b R_ab)``,
       1 for a permutation matrix;
    5. give each model b the median of the scores of the pairs (a, b).

    Parameters
    ----------
    estimators : list of fitted estimators
        At least 2 models, each with ``transform(X)`` (posterior means) and
        ``kl_per_dim(X)`` (KL of each posterior dimension from the prior, of
        shape (n_samples, n_components)), such as the package's VAEs fitted
        with different ``random_state``. The condition columns that
        ``transform`` appends for a model fitted with ``condition_features``
        (``condition_indices_``) are left out: only the codes are compared.
    X : {array-like, DataFrame} of shape (n_samples, n_features)
        Samples to encode: at least 2, accepted by every model.
    correlation : {"spearman", "lasso"}, default="spearman"
        How the codes of two models are compared: Spearman rank correlation
        (UDR_S of the paper, invariant to monotone transformations of each
        dimension) or Lasso regression weights (UDR_L).
    kl_threshold : float, default=0.01
        Mean KL in nats at or below which a dimension counts as collapsed and
        is dropped. A model with no informative dimension agrees with no
        other: its pairs score 0 (and if no model has one, all score 0 with
        an :class:`~sklearn.exceptions.UndefinedMetricWarning`).

    Returns
    -------
    scores : ndarray of shape (n_estimators,)
        UDR of each model; higher is better. At most 1 with ``"spearman"``
        (reached when the informative dimensions of all models are the same
        uncorrelated codes up to order, sign and monotone rescaling) and
        ``1 - 0.1 = 0.9`` with ``"lasso"`` (the penalty shrinks each weight).

    See Also
    --------
    sklearn_betavae.model_selection.UDRSelector : Fits the seeds and keeps the best.

    Notes
    -----
    disentanglement_lib also zeroes the dimensions with a mean KL at or
    below 0.01 whatever its threshold; here ``kl_threshold`` does both, and
    the scores are the same at the default 0.01. Two edge cases differ: a
    dimension that is constant on X correlates with nothing here (its
    entries are 0), where disentanglement_lib's NaN zeroes the score of
    every row and column it meets; and a pair with a model that has no
    informative dimension scores 0, where disentanglement_lib fails.

    References
    ----------
    Duan, S. et al. (2020). Unsupervised Model Selection for Variational
    Disentangled Representation Learning. ICLR.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.metrics import udr_score
    >>> X = load_digits().data[:200] / 16
    >>> models = [BetaVAE(n_components=3, hidden_layer_sizes=(32,), max_epochs=5,
    ...                   learning_rate=3e-3, random_state=seed).fit(X) for seed in range(3)]
    >>> scores = udr_score(models, X)
    >>> scores.shape, bool(((scores >= 0) & (scores <= 1)).all())
    ((3,), True)
    """
    if not isinstance(estimators, (list, tuple)):
        raise ValueError(
            f"estimators must be a list of fitted models, got {type(estimators).__name__}."
        )
    if len(estimators) < 2:
        raise ValueError(
            f"UDR compares models with each other: pass at least 2 fitted models, got "
            f"{len(estimators)}."
        )
    _check_udr_params(correlation, kl_threshold)
    encoded = [_encode_with_kl(estimator, X, i) for i, estimator in enumerate(estimators)]
    scores, _ = _udr_from_codes(
        [codes for codes, _ in encoded],
        [kl for _, kl in encoded],
        correlation=correlation,
        kl_threshold=kl_threshold,
    )
    return scores
