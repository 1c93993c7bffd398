"""Unsupervised measures of a representation: no factors needed."""

from numbers import Real

import numpy as np

from ._utils import _check_codes


def gaussian_total_correlation(codes):
    """Total correlation of a Gaussian fitted to the codes, in nats.

    ``TC = KL(N(mu, Sigma) || prod_i N(mu_i, Sigma_ii))
    = 1/2 (sum_i log Sigma_ii - log det Sigma)``

    with ``Sigma`` the sample covariance of the codes: 0 when the codes are
    uncorrelated, growing as they become linearly dependent (infinite if one
    is a linear combination of others). Codes with zero variance are
    independent of everything and are left out.

    Parameters
    ----------
    codes : array-like of shape (n_samples, n_codes)
        Representation, e.g. the posterior means ``estimator.transform(X)``.

    Returns
    -------
    total_correlation : float
        Non-negative; lower is more factorised.

    Raises
    ------
    ValueError
        If there are no more samples than codes that vary: the sample
        covariance is then singular whatever the codes, and the total
        correlation would be infinite even for independent noise.

    Notes
    -----
    This is the total correlation of the distribution of the posterior means
    under a Gaussian approximation (the unsupervised score of Locatello et al.
    2019), not the total correlation of the aggregate posterior ``q(z)`` that
    beta-TCVAE and FactorVAE penalise: it sees linear dependence only.

    References
    ----------
    Watanabe, S. (1960). Information Theoretical Analysis of Multivariate
    Correlation. IBM Journal of Research and Development.

    Locatello, F. et al. (2019). Challenging Common Assumptions in the
    Unsupervised Learning of Disentangled Representations. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_betavae.metrics import gaussian_total_correlation
    >>> codes = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1], [1, 1], [-1, -1]])
    >>> round(gaussian_total_correlation(codes), 4)  # correlation 1/3: log(9/8) / 2
    0.0589
    """
    codes = _check_codes(codes)
    covariance = np.atleast_2d(np.cov(codes, rowvar=False))
    variance = np.diag(covariance)
    keep = variance > 0
    if not keep.any():
        return 0.0
    n_samples, n_varying = codes.shape[0], int(keep.sum())
    if n_samples <= n_varying:
        raise ValueError(
            f"gaussian_total_correlation needs more samples than codes that vary, got "
            f"{n_samples} samples for {n_varying} codes: the sample covariance of so few "
            "samples is singular, and the total correlation infinite, whatever the codes."
        )
    covariance = covariance[np.ix_(keep, keep)]
    sign, logdet = np.linalg.slogdet(covariance)
    if sign <= 0:
        return float(np.inf)
    return float(max(0.0, 0.5 * (np.sum(np.log(variance[keep])) - logdet)))


def active_units(codes, *, threshold=0.01):
    """Number of active code dimensions (Burda et al. 2016).

    A dimension ``u`` is active when the variance over the data of its
    posterior mean, ``Cov_x(E_q(u|x)[u])``, exceeds ``threshold``: an inactive
    dimension encodes the same thing for every input, its posterior having
    collapsed onto the prior.

    Parameters
    ----------
    codes : array-like of shape (n_samples, n_codes)
        Posterior means, e.g. ``estimator.transform(X)``.
    threshold : float, default=0.01
        Variance above which a dimension counts as active (Burda et al.'s
        value, for a standard normal prior).

    Returns
    -------
    n_active : int
        Number of active dimensions.

    References
    ----------
    Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted
    Autoencoders. ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_betavae.metrics import active_units
    >>> rng = np.random.RandomState(0)
    >>> codes = rng.randn(100, 3) * [1.0, 0.01, 0.5]
    >>> active_units(codes)
    2
    """
    codes = _check_codes(codes)
    if not isinstance(threshold, Real) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number, got {threshold!r}.")
    return int(np.sum(np.var(codes, axis=0, ddof=1) > threshold))
