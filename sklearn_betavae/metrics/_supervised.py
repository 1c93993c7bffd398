"""Supervised disentanglement metrics: codes scored against known factors.

Each metric takes ``factors`` of shape (n_samples, n_factors) and ``codes`` of
shape (n_samples, n_codes), in scikit-learn's (y_true, y_pred) order, and
returns a float or a dict of floats; the pure-array cores (``_mig_from_mi``,
``_dci_from_importances``, ``_modularity_from_mi``, ...) are separate from
the estimation of mutual information, importances and scores.
"""

import warnings
from numbers import Real

import numpy as np
from sklearn.base import clone, is_regressor
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import check_random_state

from ._utils import (
    _check_discrete_factors,
    _check_factors_codes,
    _check_n_bins,
    _entropy,
    _factor_classes,
    _histogram_discretize,
    _mutual_info_matrix,
)

_SEED_MAX = np.iinfo(np.int32).max
# Factor classes are classes even when there are many of them for few samples.
_MANY_CLASSES = "The number of unique classes is greater than 50%"


def _check_not_constant(factor_classes):
    constant = [j for j, column in enumerate(factor_classes.T) if column.min() == column.max()]
    if constant:
        raise ValueError(
            f"Factors {constant} are constant: a disentanglement metric needs every "
            "factor to vary."
        )


def _check_two_classes(labels, factor, split, need):
    """Raise a ValueError if ``labels``, a factor's classes in one split, hold a single class.

    ``split`` is "training" or "held-out"; ``need`` names what needs two classes.
    """
    if labels.min() == labels.max():
        test_size = "smaller" if split == "training" else "larger"
        raise ValueError(
            f"Factor {factor} has a single class in the {split} split (size "
            f"{len(labels)}): {need} needs at least 2 classes there. Use more samples, a "
            f"{test_size} test_size, or merge the factor's rarest classes."
        )


def _check_test_size(test_size):
    if not isinstance(test_size, Real) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}.")


def _warn_single(n, what, score):
    """Warn that ``score`` is 1 by definition with a single factor or code."""
    if n == 1:
        warnings.warn(
            f"{score} is 1 by definition with a single {what}, whatever the codes (even "
            f"pure noise): it cannot tell representations apart. Score against at least "
            f"2 {what}s, or read another score.",
            UserWarning,
            stacklevel=3,
        )


def _split(n_samples, test_size, rng):
    """Shuffled train and test indices."""
    seed = rng.randint(_SEED_MAX)
    return train_test_split(np.arange(n_samples), test_size=test_size, random_state=seed)


def _mig_from_mi(mutual_info, factor_entropy):
    """MIG from a mutual-information matrix (n_codes, n_factors) and factor entropies.

    ``mean_k (I_(1)k - I_(2)k) / H(v_k)``, ``I_(1)k >= I_(2)k`` the two largest
    entries of column k.
    """
    top = np.sort(mutual_info, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / factor_entropy))


def mutual_info_gap(factors, codes, *, n_bins=20, discrete_factors=True):
    """Mutual information gap (MIG) between factors and codes.

    For each factor ``v_k``, the gap between the two codes that carry the most
    information about it, normalised by its entropy, averaged over factors:

    ``MIG = 1/K sum_k (I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k)``

    where ``z_(1)`` and ``z_(2)`` are the codes of largest and second largest
    mutual information with ``v_k``. As in disentanglement_lib, each code is
    discretised into ``n_bins`` equal-width bins over its range and the
    mutual information of the resulting discrete variables is computed from
    their joint histogram, in nats. Between 0 and 1: 1 when each factor is
    captured entirely by one code and no other code knows about it.

    Parameters
    ----------
    factors : array-like of shape (n_samples, n_factors) or (n_samples,)
        True generative factors, e.g. the ``factors`` of
        :func:`~sklearn_betavae.datasets.make_sprites`.
    codes : array-like of shape (n_samples, n_codes)
        Representation of the same samples, e.g. ``estimator.transform(X)``.
        At least two codes.
    n_bins : int, default=20
        Number of equal-width bins of each code (and of each continuous factor).
    discrete_factors : bool or array-like of bool, default=True
        Whether each factor is discrete, each distinct value being a class (as
        in the references, where the factors of dSprites are grids), or
        continuous and discretised into ``n_bins`` bins like the codes. A
        single bool applies to all factors.

    Returns
    -------
    score : float
        MIG, between 0 and 1 (higher is more disentangled).

    See Also
    --------
    modularity_explicitness : Mutual-information based modularity.

    Notes
    -----
    The estimate depends on ``n_bins``: a factor with more distinct values
    than bins cannot reach a normalised information of 1 even when one code
    equals it (a perfect code of a 40-valued factor scores about
    ``log 20 / log 40 = 0.81`` on it with 20 bins). Chen et al. estimate
    ``I(z; v)`` from the encoder's distribution instead of a histogram of its
    means; this is the histogram estimate of Locatello et al. (2019).

    References
    ----------
    Chen, R. T. Q., Li, X., Grosse, R. and Duvenaud, D. (2018). Isolating
    Sources of Disentanglement in Variational Autoencoders. NeurIPS.

    Locatello, F. et al. (2019). Challenging Common Assumptions in the
    Unsupervised Learning of Disentangled Representations. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_betavae.metrics import mutual_info_gap
    >>> rng = np.random.RandomState(0)
    >>> factors = rng.randint(4, size=(1000, 2))
    >>> codes = factors + 0.1 * rng.randn(1000, 2)
    >>> round(mutual_info_gap(factors, codes), 2)
    0.98
    >>> round(mutual_info_gap(factors, codes @ [[1.0, 1.0], [-1.0, 1.0]]), 2)
    0.03
    """
    factors, codes = _check_factors_codes(factors, codes)
    n_bins = _check_n_bins(n_bins)
    if codes.shape[1] < 2:
        raise ValueError("mutual_info_gap needs at least 2 codes: the gap is between two codes.")
    factor_classes = _factor_classes(factors, discrete_factors, n_bins)
    _check_not_constant(factor_classes)
    mutual_info = _mutual_info_matrix(_histogram_discretize(codes, n_bins), factor_classes)
    factor_entropy = np.array([_entropy(column) for column in factor_classes.T])
    return _mig_from_mi(mutual_info, factor_entropy)


def _normalized_entropy(p, axis):
    """Entropy of the distributions ``p`` along ``axis`` (each summing to 1), in base ``n``.

    ``n`` is the length of ``axis``, so that the result is in [0, 1].
    """
    n = p.shape[axis]
    if n == 1:
        return np.zeros(p.shape[1 - axis])
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return -plogp.sum(axis=axis) / np.log(n)


def _dci_from_importances(importance):
    """Disentanglement and completeness from an importance matrix (n_codes, n_factors).

    Eastwood & Williams (2018), section 3: ``D = sum_i rho_i (1 - H_K(P_i.))``
    with ``P_ij = R_ij / sum_k R_ik`` and ``rho_i = sum_j R_ij / sum_ij R_ij``;
    ``C = sum_j rho_j (1 - H_D(P~_.j))`` with ``P~_ij = R_ij / sum_k R_kj`` and
    ``rho_j`` the share of factor j in the total importance (weighted as in
    disentanglement_lib). Codes or factors of zero importance weigh nothing;
    a zero matrix scores 0.
    """
    importance = np.abs(np.asarray(importance, dtype=np.float64))
    total = importance.sum()
    if total == 0:
        return 0.0, 0.0
    code_mass, factor_mass = importance.sum(axis=1), importance.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = np.where(code_mass[:, None] > 0, importance / code_mass[:, None], 0.0)
        per_factor = np.where(factor_mass > 0, importance / factor_mass, 0.0)
    disentanglement = 1 - _normalized_entropy(per_code, axis=1)
    completeness = 1 - _normalized_entropy(per_factor, axis=0)
    return (
        float(np.sum(disentanglement * code_mass / total)),
        float(np.sum(completeness * factor_mass / total)),
    )


def _importances(model, n_codes):
    """Non-negative importance of each input of a fitted model, shape (n_codes,)."""
    if hasattr(model, "feature_importances_"):
        return np.asarray(model.feature_importances_, dtype=np.float64)
    if hasattr(model, "coef_"):
        coef = np.abs(np.asarray(model.coef_, dtype=np.float64)).reshape(-1, n_codes)
        return coef.sum(axis=0)
    raise ValueError(
        "importance_estimator must expose feature_importances_ or coef_ after fit, "
        f"{type(model).__name__} has neither."
    )


def dci(
    factors,
    codes,
    *,
    importance_estimator=None,
    discrete_factors=True,
    n_bins=20,
    test_size=0.25,
    random_state=None,
):
    """Disentanglement, completeness and informativeness (DCI) of codes.

    One model per factor predicts the factor from all codes; the importance
    ``R_ij`` of code ``i`` for factor ``j`` is that model's feature importance.
    With ``P_ij = R_ij / sum_k R_ik`` and entropies in base K (number of
    factors) or D (number of codes):

    - **disentanglement** ``D = sum_i rho_i (1 - H_K(P_i.))``, each code weighted
      by its share ``rho_i`` of the total importance: 1 when each code matters
      for a single factor;
    - **completeness** ``C = sum_j rho_j (1 - H_D(P~_.j))``, ``P~`` normalised per
      factor and weighted by factor importance (as disentanglement_lib): 1 when
      each factor is captured by a single code;
    - **informativeness**: the models' mean score on held-out samples
      (accuracy for classifiers, R^2 for regressors).

    All three are in [0, 1], higher is better.

    Parameters
    ----------
    factors : array-like of shape (n_samples, n_factors) or (n_samples,)
        True generative factors.
    codes : array-like of shape (n_samples, n_codes)
        Representation of the same samples.
    importance_estimator : estimator, default=None
        Model cloned and fitted once per factor; it must expose
        ``feature_importances_`` or ``coef_`` (absolute values, summed over
        classes). A classifier is fitted on the factor's classes (see
        ``discrete_factors``), a regressor on its values. None uses
        ``RandomForestClassifier(n_estimators=10, max_features=None)``
        seeded from ``random_state``: impurity importances of trees that may
        split on any code, fast on a few thousand samples, in the spirit of
        the gradient-boosted trees of disentanglement_lib. Eastwood & Williams
        use ``Lasso`` or ``RandomForestRegressor`` on continuous factors;
        pass those to follow them.
    discrete_factors : bool or array-like of bool, default=True
        Whether each factor is discrete (each distinct value a class) or
        continuous (discretised into ``n_bins`` equal-width classes for a
        classifier).
    n_bins : int, default=20
        Number of classes of a continuous factor.
    test_size : float, default=0.25
        Fraction of the samples held out to measure informativeness.
    random_state : int, RandomState instance or None, default=None
        Seed of the train/test split and of the default importance model.

    Returns
    -------
    scores : dict
        ``{"disentanglement": float, "completeness": float, "informativeness": float}``.

    Warns
    -----
    UserWarning
        With a single factor (e.g. a 1-D ``factors``, or a 1-D ``y`` given to
        a scorer) every code is "disentangled" by definition: disentanglement
        is 1 whatever the codes, even for pure noise. Likewise completeness is
        1 with a single code. Such a score cannot rank representations.

    Notes
    -----
    The values depend on the importance model: impurity importances of trees
    and absolute coefficients of a linear model rank codes differently, so
    compare DCI numbers only under the same ``importance_estimator``.
    Eastwood & Williams define informativeness as a prediction error (lower is
    better); it is reported here as a score, like disentanglement_lib.

    Importances of the default random forest depend slightly on the order of
    the codes (trees break ties between equally good splits in a random order
    of the features), so permuting the codes changes the scores by about as
    much as changing ``random_state``. Average over several seeds, or pass a
    linear ``importance_estimator`` (``Lasso``, ``LinearRegression``), which
    is invariant up to its solver's tolerance.

    References
    ----------
    Eastwood, C. and Williams, C. K. I. (2018). A Framework for the
    Quantitative Evaluation of Disentangled Representations. ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_betavae.metrics import dci
    >>> rng = np.random.RandomState(0)
    >>> factors = rng.randint(4, size=(400, 2))
    >>> codes = factors + 0.1 * rng.randn(400, 2)
    >>> scores = dci(factors, codes, random_state=0)
    >>> {name: round(value, 2) for name, value in scores.items()}
    {'disentanglement': 1.0, 'completeness': 1.0, 'informativeness': 1.0}
    """
    factors, codes = _check_factors_codes(factors, codes)
    n_bins = _check_n_bins(n_bins)
    _check_test_size(test_size)
    rng = check_random_state(random_state)
    factor_classes = _factor_classes(factors, discrete_factors, n_bins)
    _check_not_constant(factor_classes)
    train, test = _split(len(codes), test_size, rng)
    if importance_estimator is None:
        importance_estimator = RandomForestClassifier(
            n_estimators=10, max_features=None, random_state=rng.randint(_SEED_MAX)
        )
    regress = is_regressor(importance_estimator)
    n_codes, n_factors = codes.shape[1], factors.shape[1]
    importance = np.zeros((n_codes, n_factors))
    informativeness = np.zeros(n_factors)
    for j in range(n_factors):
        target = factors[:, j] if regress else factor_classes[:, j]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_MANY_CLASSES, category=UserWarning)
            model = clone(importance_estimator).fit(codes[train], target[train])
        importance[:, j] = _importances(model, n_codes)
        informativeness[j] = model.score(codes[test], target[test])
    disentanglement, completeness = _dci_from_importances(importance)
    _warn_single(n_factors, "factor", "DCI disentanglement")
    _warn_single(n_codes, "code", "DCI completeness")
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness": float(np.mean(informativeness)),
    }


def _sap_from_scores(score_matrix):
    """SAP from a score matrix (n_codes, n_factors): mean gap of the two best codes."""
    top = np.sort(score_matrix, axis=0)[::-1]
    return float(np.mean(top[0] - top[1]))


def _squared_correlation(codes, factor):
    """R^2 of the least-squares line of ``factor`` on each code; 0 for constant codes."""
    centred = codes - codes.mean(axis=0)
    f = factor - factor.mean()
    covariance = centred.T @ f
    denominator = np.sum(centred**2, axis=0) * np.sum(f**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, covariance**2 / denominator, 0.0)


def sap_score(factors, codes, *, discrete_factors=True, test_size=0.25, random_state=None):
    """Separated attribute predictability (SAP) of codes.

    Builds a score matrix ``S`` of shape (n_codes, n_factors) whose entry
    ``S_ij`` says how well code ``i`` alone predicts factor ``j``, then
    averages over factors the gap between the two best codes:
    ``SAP = 1/K sum_j (S_(1)j - S_(2)j)``.

    - continuous factor: ``S_ij`` is the R^2 of the least-squares line of the
      factor on the code (its squared correlation), on all samples;
    - discrete factor with ``c`` classes: ``S_ij`` is the balanced accuracy on
      held-out samples of a decision tree with at most ``c`` leaves on the
      single code (thresholds on the code, one interval per class), adjusted
      for chance (``balanced_accuracy_score(adjusted=True)``: 0 at chance, 1
      when perfect), so that factors with different numbers of classes count
      alike, and clipped at 0: a code that does worse than chance on the
      held-out samples predicts nothing and scores 0, not a negative value
      that would widen the gap beyond 1 (Kumar et al.'s scores are in
      [0, 1]).

    Parameters
    ----------
    factors : array-like of shape (n_samples, n_factors) or (n_samples,)
        True generative factors.
    codes : array-like of shape (n_samples, n_codes)
        Representation of the same samples. At least two codes.
    discrete_factors : bool or array-like of bool, default=True
        Whether each factor is scored by classification (discrete) or
        regression (continuous). A single bool applies to all factors.
    test_size : float, default=0.25
        Fraction of the samples held out to score the classifiers.
    random_state : int, RandomState instance or None, default=None
        Seed of the train/test split and of the trees' tie-breaking.

    Returns
    -------
    score : float
        SAP, between 0 and 1 (higher is more disentangled); about 0 for codes
        that predict no factor.

    Raises
    ------
    ValueError
        If the held-out samples of a discrete factor hold a single class: its
        balanced accuracy is then undefined. Use more samples or a larger
        ``test_size``.

    Notes
    -----
    Kumar et al. use balanced accuracy without the chance adjustment, so that
    their maximum for a factor of ``c`` classes is ``1 - 1/c``;
    disentanglement_lib uses the plain accuracy of a linear SVM per code,
    which cannot separate the middle classes of an ordinal factor from one
    code. Both scores are in [0, 1], hence the clipping at 0 here. The
    held-out samples are a random split shared by all factors (the
    references draw a separate test set), so a factor with very rare classes
    may need more samples.

    References
    ----------
    Kumar, A., Sattigeri, P. and Balakrishnan, A. (2018). Variational
    Inference of Disentangled Latent Concepts from Unlabeled Observations.
    ICLR (arXiv 2017).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_betavae.metrics import sap_score
    >>> rng = np.random.RandomState(0)
    >>> factors = rng.rand(500, 2)
    >>> codes = factors + 0.01 * rng.randn(500, 2)
    >>> round(sap_score(factors, codes, discrete_factors=False), 2)
    1.0
    >>> round(sap_score(factors, codes @ [[1.0, 1.0], [-1.0, 1.0]], discrete_factors=False), 2)
    0.01
    """
    factors, codes = _check_factors_codes(factors, codes)
    _check_test_size(test_size)
    if codes.shape[1] < 2:
        raise ValueError("sap_score needs at least 2 codes: the gap is between two codes.")
    mask = _check_discrete_factors(discrete_factors, factors.shape[1])
    rng = check_random_state(random_state)
    # Continuous factors only need classes for the constancy check: 2 bins suffice.
    classes = _factor_classes(factors, mask, n_bins=2)
    _check_not_constant(classes)
    train, test = _split(len(codes), test_size, rng)
    score_matrix = np.zeros((codes.shape[1], factors.shape[1]))
    for j in range(factors.shape[1]):
        if not mask[j]:
            score_matrix[:, j] = _squared_correlation(codes, factors[:, j])
            continue
        _check_two_classes(classes[test, j], j, "held-out", "SAP's balanced accuracy")
        n_classes = int(classes[:, j].max()) + 1
        tree = DecisionTreeClassifier(
            max_leaf_nodes=max(2, n_classes), random_state=rng.randint(_SEED_MAX)
        )
        for i in range(codes.shape[1]):
            code = codes[:, [i]]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_MANY_CLASSES, category=UserWarning)
                model = clone(tree).fit(code[train], classes[train, j])
            predicted = model.predict(code[test])
            with warnings.catch_warnings():
                # A class absent from a small test set is not an error here.
                warnings.simplefilter("ignore", UserWarning)
                accuracy = balanced_accuracy_score(classes[test, j], predicted, adjusted=True)
            # Below chance is no prediction: scores in [0, 1] as in Kumar et al.
            score_matrix[i, j] = max(accuracy, 0.0)
    return _sap_from_scores(score_matrix)


def _modularity_from_mi(mutual_info):
    """Modularity from a mutual-information matrix (n_codes, n_factors).

    Ridgeway & Mozer (2018), eq. 2: for code i with largest information
    ``theta_i`` (about factor ``j*``), ``delta_i = sum_{j != j*} I_ij^2 /
    (theta_i^2 (K - 1))`` and modularity ``1 - delta_i``, averaged over codes;
    a code with no information scores 0 (as disentanglement_lib).
    """
    squared = np.asarray(mutual_info, dtype=np.float64) ** 2
    n_factors = squared.shape[1]
    largest = squared.max(axis=1)
    if n_factors == 1:
        return float(np.mean(largest > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation = (squared.sum(axis=1) - largest) / (largest * (n_factors - 1))
    return float(np.mean(np.where(largest > 0, 1 - deviation, 0.0)))


def _explicitness(codes, classes, train, test, factor):
    """Mean one-vs-rest ROC AUC of a logistic regression of one factor's classes on codes."""
    _check_two_classes(classes[train], factor, "training", "explicitness")
    # Newton steps converge in ~10 iterations where lbfgs needs hundreds on separable classes.
    classifier = LogisticRegression(C=100.0, solver="newton-cholesky", max_iter=1000)
    model = make_pipeline(StandardScaler(), classifier)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_MANY_CLASSES, category=UserWarning)
        model.fit(codes[train], classes[train])
    proba = model.predict_proba(codes[test])
    aucs = []
    for column, label in enumerate(model.classes_):
        positive = classes[test] == label
        if positive.all() or not positive.any():
            continue  # AUC undefined without both outcomes in the test set
        aucs.append(roc_auc_score(positive, proba[:, column]))
    return float(np.mean(aucs)) if aucs else 0.5


def modularity_explicitness(
    factors, codes, *, n_bins=20, discrete_factors=True, test_size=0.25, random_state=None
):
    """Modularity and explicitness of codes (Ridgeway & Mozer 2018).

    - **modularity**: a code is modular when it carries information about one
      factor only. With ``I_ij`` the mutual information between code ``i``
      (discretised into ``n_bins`` equal-width bins) and factor ``j``, and
      ``theta_i = max_j I_ij``,
      ``modularity = 1/D sum_i (1 - sum_{j != argmax} I_ij^2 / (theta_i^2 (K - 1)))``.
      1 for perfectly modular codes, lower as information spreads; a code
      with no information about any factor scores 0.
    - **explicitness**: how linearly decodable each factor is from all codes.
      A multinomial logistic regression on standardised codes, with a weak
      penalty (``C=100``, enough to converge on separable classes), predicts
      each factor's classes; explicitness is its one-vs-rest ROC AUC on
      held-out samples, averaged over classes and factors. 1 when perfect,
      0.5 at chance.

    Parameters
    ----------
    factors : array-like of shape (n_samples, n_factors) or (n_samples,)
        True generative factors.
    codes : array-like of shape (n_samples, n_codes)
        Representation of the same samples.
    n_bins : int, default=20
        Number of equal-width bins of each code (and of each continuous factor).
    discrete_factors : bool or array-like of bool, default=True
        Whether each factor is discrete (each distinct value a class) or
        continuous (discretised into ``n_bins`` equal-width bins).
    test_size : float, default=0.25
        Fraction of the samples held out to measure explicitness.
    random_state : int, RandomState instance or None, default=None
        Seed of the train/test split.

    Returns
    -------
    scores : dict
        ``{"modularity": float, "explicitness": float}``.

    Raises
    ------
    ValueError
        If the training samples of a factor hold a single class, from which no
        classifier can be fitted (a factor with very rare classes). Use more
        samples or a smaller ``test_size``.

    Warns
    -----
    UserWarning
        With a single factor, modularity is 1 by definition for every code
        that carries any information about it, even pure noise: such a score
        cannot rank representations.

    Notes
    -----
    Modularity is a ratio per code, so it does not see how much a code knows:
    pure noise is not scored near 0, since the histogram estimate of mutual
    information is biased upwards by about ``(n_bins - 1)(c - 1) / (2 n)``
    nats for a factor of ``c`` classes, and a noise code looks "modular" for
    the factor with most classes (about 0.65 for noise codes against the
    sprites factors with 2000 samples). Collapsed codes that vary a little
    behave like noise; codes that are exactly constant score 0 (the mean runs
    over every code, as in disentanglement_lib). Read modularity with
    explicitness and with a compactness measure such as MIG or DCI
    completeness.

    References
    ----------
    Ridgeway, K. and Mozer, M. C. (2018). Learning Deep Disentangled
    Embeddings with the F-Statistic Loss. NeurIPS.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_betavae.metrics import modularity_explicitness
    >>> rng = np.random.RandomState(0)
    >>> factors = rng.randint(4, size=(1000, 2))
    >>> codes = factors + 0.1 * rng.randn(1000, 2)
    >>> scores = modularity_explicitness(factors, codes, random_state=0)
    >>> {name: round(value, 2) for name, value in scores.items()}
    {'modularity': 1.0, 'explicitness': 1.0}
    """
    factors, codes = _check_factors_codes(factors, codes)
    n_bins = _check_n_bins(n_bins)
    _check_test_size(test_size)
    rng = check_random_state(random_state)
    factor_classes = _factor_classes(factors, discrete_factors, n_bins)
    _check_not_constant(factor_classes)
    mutual_info = _mutual_info_matrix(_histogram_discretize(codes, n_bins), factor_classes)
    train, test = _split(len(codes), test_size, rng)
    explicitness = [
        _explicitness(codes, column, train, test, j) for j, column in enumerate(factor_classes.T)
    ]
    _warn_single(factors.shape[1], "factor", "Modularity")
    return {
        "modularity": _modularity_from_mi(mutual_info),
        "explicitness": float(np.mean(explicitness)),
    }
