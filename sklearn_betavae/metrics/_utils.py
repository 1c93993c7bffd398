"""Input validation and discretisation shared by the disentanglement metrics."""

from numbers import Integral

import numpy as np
from sklearn.metrics import mutual_info_score
from sklearn.utils import check_array, check_consistent_length


def _check_codes(codes, *, min_samples=2):
    """Validate codes: finite 2-D float64 of shape (n_samples, n_codes)."""
    return check_array(
        codes, dtype=np.float64, ensure_min_samples=min_samples, input_name="codes"
    )


def _check_factors_codes(factors, codes, *, min_samples=2):
    """Validate a pair (factors, codes) of finite arrays with the same number of rows.

    A 1-D ``factors`` is a single factor (as a 1-D ``y`` passed to a scorer).
    """
    factors = check_array(
        factors,
        dtype=np.float64,
        ensure_2d=False,
        ensure_min_samples=min_samples,
        input_name="factors",
    )
    if factors.ndim == 1:
        factors = factors.reshape(-1, 1)
    elif factors.ndim != 2:
        raise ValueError(f"factors must be 1-D or 2-D, got shape {factors.shape}.")
    codes = _check_codes(codes, min_samples=min_samples)
    check_consistent_length(factors, codes)
    return factors, codes


def _check_n_bins(n_bins):
    if not isinstance(n_bins, Integral) or isinstance(n_bins, bool) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}.")
    return int(n_bins)


def _check_discrete_factors(discrete_factors, n_factors):
    """Boolean mask of the discrete factors from True, False or a per-factor sequence."""
    if isinstance(discrete_factors, (bool, np.bool_)):
        return np.full(n_factors, bool(discrete_factors))
    mask = np.asarray(discrete_factors)
    if mask.shape != (n_factors,) or mask.dtype != bool:
        raise ValueError(
            f"discrete_factors must be a bool or a sequence of {n_factors} bools, "
            f"got {discrete_factors!r}."
        )
    return mask


def _histogram_discretize(values, n_bins):
    """Equal-width bin index in [0, n_bins) of each entry of each column.

    The bins span each column's range, as ``np.histogram(column, n_bins)``
    (disentanglement_lib's ``_histogram_discretize``).
    """
    binned = np.empty(values.shape, dtype=np.intp)
    for j, column in enumerate(values.T):
        edges = np.histogram_bin_edges(column, bins=n_bins)
        binned[:, j] = np.digitize(column, edges[1:-1])
    return binned


def _factor_classes(factors, discrete_factors, n_bins):
    """Class labels of each factor: its distinct values, or equal-width bins if continuous."""
    mask = _check_discrete_factors(discrete_factors, factors.shape[1])
    classes = np.empty(factors.shape, dtype=np.intp)
    for j, column in enumerate(factors.T):
        if mask[j]:
            classes[:, j] = np.unique(column, return_inverse=True)[1]
        else:
            classes[:, j] = _histogram_discretize(column[:, None], n_bins)[:, 0]
    return classes


def _mutual_info_matrix(code_bins, factor_classes):
    """Mutual information (nats) between each discretised code and each factor.

    Returns an array of shape (n_codes, n_factors).
    """
    return np.array(
        [
            [mutual_info_score(factor, code) for factor in factor_classes.T]
            for code in code_bins.T
        ]
    )


def _entropy(labels):
    """Entropy (nats) of the empirical distribution of integer labels."""
    counts = np.bincount(labels)
    p = counts[counts > 0] / len(labels)
    return float(-np.sum(p * np.log(p)))
