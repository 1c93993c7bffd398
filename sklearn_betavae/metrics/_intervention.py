"""Intervention-based metrics: fresh batches rendered with one factor held fixed.

Both take a fitted estimator (only ``transform`` is used) and a sampler of
factors -> images such as :class:`~sklearn_betavae.datasets.SpritesSampler`:
an object with ``n_values`` (number of classes of each factor),
``sample_classes(n_samples, random_state)`` (an int array of shape
(n_samples, n_factors)) and ``render(classes)`` (the inputs of the estimator).
"""

from numbers import Integral, Real

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

# Images rendered and encoded per call of transform, bounding memory.
_IMAGES_PER_CALL = 4096


def _check_sampler(sampler):
    for name in ("n_values", "sample_classes", "render"):
        if not hasattr(sampler, name):
            raise ValueError(
                f"sampler must have n_values, sample_classes and render; "
                f"{type(sampler).__name__} has no {name}."
            )
    return len(sampler.n_values)


def _check_positive_int(value, name, minimum=1):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _encode(estimator, sampler, classes):
    """Codes of the images of ``classes`` (n, n_factors) as float64 (n, n_codes)."""
    codes = np.asarray(estimator.transform(sampler.render(classes)), dtype=np.float64)
    if codes.ndim != 2 or len(codes) != len(classes):
        raise ValueError(
            f"estimator.transform must return an array of shape (n_samples, n_codes), "
            f"got {codes.shape} for {len(classes)} samples."
        )
    return codes


def _fixed_factor_batches(estimator, sampler, fixed, batch_size, rng, paired):
    """Codes of batches that each hold one factor fixed, chunk by chunk.

    Yields ``(fixed_chunk, codes)`` with codes of shape (m, batch_size, n_codes),
    and, when ``paired``, a second array of the same shape: pairs that share
    only the value of the fixed factor (each pair its own value).
    """
    n_factors = len(sampler.n_values)
    per_chunk = max(1, _IMAGES_PER_CALL // (batch_size * (2 if paired else 1)))
    for begin in range(0, len(fixed), per_chunk):
        factor = fixed[begin : begin + per_chunk]
        m, rows = len(factor), np.arange(len(factor))
        first = sampler.sample_classes(m * batch_size, random_state=rng)
        first = np.asarray(first).reshape(m, batch_size, n_factors)
        if paired:
            second = sampler.sample_classes(m * batch_size, random_state=rng)
            second = np.asarray(second).reshape(m, batch_size, n_factors)
            second[rows, :, factor] = first[rows, :, factor]
            classes = np.concatenate([first, second]).reshape(-1, n_factors)
            codes = _encode(estimator, sampler, classes).reshape(2, m, batch_size, -1)
            yield factor, codes[0], codes[1]
        else:
            # The whole batch takes the fixed factor's value of its first sample.
            first[rows, :, factor] = first[rows, 0, factor][:, None]
            codes = _encode(estimator, sampler, first.reshape(-1, n_factors))
            yield factor, codes.reshape(m, batch_size, -1)


def _beta_vae_features(estimator, sampler, n_points, batch_size, rng):
    """Labels (fixed factor) and features (mean |z1 - z2| over a batch of pairs)."""
    n_factors = len(sampler.n_values)
    labels = rng.randint(n_factors, size=n_points)
    features = [
        np.mean(np.abs(codes1 - codes2), axis=1)
        for _, codes1, codes2 in _fixed_factor_batches(
            estimator, sampler, labels, batch_size, rng, paired=True
        )
    ]
    return np.concatenate(features), labels


def beta_vae_score(
    estimator, sampler, *, batch_size=64, n_train=10000, n_eval=5000, random_state=None
):
    """beta-VAE disentanglement score (Higgins et al. 2017).

    Each data point of a classification task is made as follows: choose a
    factor ``k`` uniformly; draw ``batch_size`` pairs of factor combinations
    whose two members share the value of factor ``k`` (and nothing else by
    design); encode the images; the point's features are the mean absolute
    difference of the two codes of a pair, ``mean_l |z1_l - z2_l|``, and its
    label is ``k``. A linear classifier (logistic regression on standardised
    features) is trained on ``n_train`` points; the score is its accuracy on
    ``n_eval`` fresh points. When a code dimension captures factor ``k``
    alone, its difference vanishes exactly when ``k`` is fixed, which a
    linear classifier can read.

    Parameters
    ----------
    estimator : object
        Fitted model whose ``transform(X)`` returns codes of shape
        (n_samples, n_codes), e.g. the posterior means of a VAE.
    sampler : object
        Sampler of factors -> images (see the module docstring), e.g.
        :class:`~sklearn_betavae.datasets.SpritesSampler`.
    batch_size : int, default=64
        Number of pairs averaged per data point (``L`` in the paper).
    n_train : int, default=10000
        Number of training points of the classifier.
    n_eval : int, default=5000
        Number of evaluation points.
    random_state : int, RandomState instance or None, default=None
        Seed of the factors drawn.

    Returns
    -------
    score : float
        Evaluation accuracy, in [0, 1]; chance is 1 / n_factors.

    Notes
    -----
    The defaults follow disentanglement_lib and encode
    ``2 * batch_size * (n_train + n_eval)`` images (1.92 million): minutes
    for a convolutional VAE on a CPU. Smaller ``n_train`` and ``n_eval``
    give a noisier score. A factor whose values all render the same image
    (e.g. the orientation of a circle) cannot be identified by any model.
    The score is known to saturate: a representation that is a rotation of a
    disentangled one can still score high, which motivated the FactorVAE score.

    References
    ----------
    Higgins, I. et al. (2017). beta-VAE: Learning Basic Visual Concepts with a
    Constrained Variational Framework. ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from sklearn_betavae.datasets import SpritesSampler
    >>> from sklearn_betavae.metrics import beta_vae_score
    >>> sampler = SpritesSampler(image_size=16)
    >>> # A "representation" that looks at where the sprite is: its centroid.
    >>> grid = np.indices((16, 16)).reshape(2, -1)
    >>> centroid = FunctionTransformer(lambda X: (X @ grid.T) / X.sum(1, keepdims=True))
    >>> score = beta_vae_score(centroid, sampler, batch_size=16, n_train=200, n_eval=100,
    ...                        random_state=0)
    >>> 0.3 < score < 1.0  # finds the two position factors, not the other three
    True
    """
    _check_sampler(sampler)
    batch_size = _check_positive_int(batch_size, "batch_size")
    n_train = _check_positive_int(n_train, "n_train", minimum=2)
    n_eval = _check_positive_int(n_eval, "n_eval")
    rng = check_random_state(random_state)
    train_features, train_labels = _beta_vae_features(
        estimator, sampler, n_train, batch_size, rng
    )
    eval_features, eval_labels = _beta_vae_features(estimator, sampler, n_eval, batch_size, rng)
    if len(np.unique(train_labels)) < 2:
        raise ValueError("The training points hold a single factor fixed: increase n_train.")
    classifier = make_pipeline(
        StandardScaler(), LogisticRegression(solver="newton-cholesky", max_iter=1000)
    )
    classifier.fit(train_features, train_labels)
    return float(classifier.score(eval_features, eval_labels))


def _factor_vae_votes(estimator, sampler, n_points, batch_size, scale, rng):
    """Votes (n_factors, n_codes): how often each code had the least normalised variance."""
    n_factors = len(sampler.n_values)
    labels = rng.randint(n_factors, size=n_points)
    votes = np.zeros((n_factors, len(scale)), dtype=np.int64)
    for factor, codes in _fixed_factor_batches(
        estimator, sampler, labels, batch_size, rng, paired=False
    ):
        # Variance of each code scaled by its global std (Kim & Mnih, section 4).
        local = np.var(codes / scale, axis=1, ddof=1)
        np.add.at(votes, (factor, np.argmin(local, axis=1)), 1)
    return votes


def _majority_vote_accuracy(train_votes, eval_votes):
    """Accuracy of the classifier code -> majority factor of ``train_votes`` on ``eval_votes``."""
    majority = np.argmax(train_votes, axis=0)
    correct = eval_votes[majority, np.arange(eval_votes.shape[1])].sum()
    return float(correct / eval_votes.sum())


def factor_vae_score(
    estimator,
    sampler,
    *,
    batch_size=64,
    n_train=10000,
    n_eval=5000,
    n_variance_estimate=10000,
    prune_threshold=0.05,
    random_state=None,
):
    """FactorVAE disentanglement score (Kim & Mnih 2018).

    Codes are first divided by their standard deviation over
    ``n_variance_estimate`` random samples, and dimensions whose standard
    deviation is below ``prune_threshold`` (collapsed to the prior) are
    pruned. Each vote is made as follows: choose a factor ``k`` uniformly,
    draw ``batch_size`` factor combinations that all share one value of
    factor ``k``, encode their images, and find the code dimension ``d`` of
    smallest variance within the batch; the pair ``(d, k)`` is one vote. A
    majority-vote classifier maps each dimension to the factor it voted for
    most often over ``n_train`` votes; the score is its accuracy on
    ``n_eval`` fresh votes. Unlike the beta-VAE score, a rotated code spreads
    each factor over several dimensions and scores low.

    Parameters
    ----------
    estimator : object
        Fitted model whose ``transform(X)`` returns codes of shape
        (n_samples, n_codes), e.g. the posterior means of a VAE.
    sampler : object
        Sampler of factors -> images (see the module docstring), e.g.
        :class:`~sklearn_betavae.datasets.SpritesSampler`.
    batch_size : int, default=64
        Number of samples per vote (``L`` in the paper).
    n_train : int, default=10000
        Number of votes to fit the majority-vote classifier.
    n_eval : int, default=5000
        Number of votes to evaluate it.
    n_variance_estimate : int, default=10000
        Number of random samples to estimate each dimension's std.
    prune_threshold : float, default=0.05
        Dimensions whose std is below this value are ignored.
    random_state : int, RandomState instance or None, default=None
        Seed of the factors drawn.

    Returns
    -------
    score : float
        Evaluation accuracy, in [0, 1]; 0 when every dimension is pruned.

    Notes
    -----
    The defaults follow disentanglement_lib and encode
    ``batch_size * (n_train + n_eval) + n_variance_estimate`` images (970,000).
    With fewer active dimensions than factors, the score cannot reach 1.

    References
    ----------
    Kim, H. and Mnih, A. (2018). Disentangling by Factorising. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from sklearn_betavae.datasets import SpritesSampler
    >>> from sklearn_betavae.metrics import factor_vae_score
    >>> sampler = SpritesSampler(image_size=16)
    >>> # A "representation" that looks at where the sprite is: its centroid.
    >>> grid = np.indices((16, 16)).reshape(2, -1)
    >>> centroid = FunctionTransformer(lambda X: (X @ grid.T) / X.sum(1, keepdims=True))
    >>> score = factor_vae_score(centroid, sampler, batch_size=16, n_train=200, n_eval=100,
    ...                          n_variance_estimate=500, random_state=0)
    >>> 0.2 < score < 0.6  # two dimensions can only ever explain two of five factors
    True
    """
    _check_sampler(sampler)
    batch_size = _check_positive_int(batch_size, "batch_size", minimum=2)
    n_train = _check_positive_int(n_train, "n_train")
    n_eval = _check_positive_int(n_eval, "n_eval")
    n_variance_estimate = _check_positive_int(n_variance_estimate, "n_variance_estimate", 2)
    if not isinstance(prune_threshold, Real) or prune_threshold < 0:
        raise ValueError(f"prune_threshold must be a non-negative number, got {prune_threshold!r}.")
    rng = check_random_state(random_state)
    classes = sampler.sample_classes(n_variance_estimate, random_state=rng)
    scale = np.std(_encode(estimator, sampler, classes), axis=0, ddof=1)
    active = scale >= prune_threshold
    if not active.any():
        return 0.0
    pruned = _Pruned(estimator, active)
    train_votes = _factor_vae_votes(pruned, sampler, n_train, batch_size, scale[active], rng)
    eval_votes = _factor_vae_votes(pruned, sampler, n_eval, batch_size, scale[active], rng)
    return _majority_vote_accuracy(train_votes, eval_votes)


class _Pruned:
    """The active dimensions of an estimator's codes."""

    def __init__(self, estimator, active):
        self.estimator = estimator
        self.active = active

    def transform(self, X):
        return np.asarray(self.estimator.transform(X), dtype=np.float64)[:, self.active]
