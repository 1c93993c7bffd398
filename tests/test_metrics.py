"""Disentanglement metrics (``sklearn_betavae.metrics``) against their definitions."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.stats import entropy, ortho_group
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_betavae.datasets import SpritesSampler
from sklearn_betavae.metrics import (
    active_units,
    beta_vae_score,
    dci,
    factor_vae_score,
    gaussian_total_correlation,
    make_disentanglement_scorer,
    modularity_explicitness,
    mutual_info_gap,
    sap_score,
)

N_SAMPLES = 400
N_VALUES = (4, 6, 8)


@pytest.fixture(scope="module")
def factors():
    rng = np.random.RandomState(0)
    return np.column_stack([rng.randint(k, size=N_SAMPLES) for k in N_VALUES]).astype(float)


@pytest.fixture(scope="module")
def codes(factors):
    # Each factor on its own axis, standardised.
    return (factors - factors.mean(0)) / factors.std(0)


def _scores(factors, codes):
    """Every supervised score, by name, each with a fixed seed."""
    d = dci(factors, codes, random_state=0)
    m = modularity_explicitness(factors, codes, random_state=0)
    return {
        "mig": mutual_info_gap(factors, codes),
        "sap": sap_score(factors, codes, random_state=0),
        "dci_disentanglement": d["disentanglement"],
        "dci_completeness": d["completeness"],
        "dci_informativeness": d["informativeness"],
        "modularity": m["modularity"],
        "explicitness": m["explicitness"],
    }


@pytest.fixture(scope="module")
def identity_scores(factors, codes):
    return _scores(factors, codes)


# Scores that a rotation of the codes should destroy; informativeness and explicitness
# measure decodability from all codes together, which a rotation keeps by design.
SEPARATION_SCORES = ["mig", "sap", "dci_disentanglement", "dci_completeness", "modularity"]


def test_identity_codes_score_near_maximum(identity_scores):
    # Codes equal to the factors reach (almost) 1 on every supervised score.
    for name, value in identity_scores.items():
        assert 0.97 <= value <= 1.0, name


def test_rotated_codes_score_clearly_lower(factors, codes, identity_scores):
    # A random rotation mixes the factors across codes: separation scores drop, decodability stays.
    rotated = _scores(factors, codes @ ortho_group.rvs(3, random_state=1))
    for name in SEPARATION_SCORES:
        assert rotated[name] < identity_scores[name] - 0.2, name
    assert rotated["explicitness"] > 0.97
    assert rotated["dci_informativeness"] > 0.9


def test_noise_codes_score_near_zero(factors):
    # Codes independent of the factors: separation near 0, decodability at chance.
    noise = np.random.RandomState(1).randn(N_SAMPLES, 4)
    scores = _scores(factors, noise)
    for name in ["mig", "sap", "dci_disentanglement", "dci_completeness"]:
        assert abs(scores[name]) < 0.05, name
    assert abs(scores["explicitness"] - 0.5) < 0.05
    # Accuracy of the default classifier: about chance, far below 1.
    assert scores["dci_informativeness"] < 0.35
    # Modularity is a ratio per code and is not near 0 for noise (see its Notes).
    assert scores["modularity"] < 0.9


def test_permuting_codes_changes_nothing(factors, codes):
    # Metrics are invariant to the order of the code dimensions.
    mixed = codes @ np.array([[1.0, 0.3, 0.0], [0.2, 1.0, 0.5], [0.0, 0.4, 1.0]])
    noisy = np.column_stack([mixed, np.random.RandomState(2).randn(N_SAMPLES)])
    permuted = noisy[:, [2, 0, 3, 1]]
    assert_allclose(mutual_info_gap(factors, permuted), mutual_info_gap(factors, noisy))
    assert_allclose(
        sap_score(factors, permuted, random_state=0), sap_score(factors, noisy, random_state=0)
    )
    first = modularity_explicitness(factors, noisy, random_state=0)
    second = modularity_explicitness(factors, permuted, random_state=0)
    assert_allclose(first["modularity"], second["modularity"])
    assert_allclose(first["explicitness"], second["explicitness"], atol=1e-6)
    # A linear importance model has no tie-breaking by feature order: exact invariance.
    linear = dci(factors, noisy, importance_estimator=LinearRegression(), random_state=0)
    linear_permuted = dci(
        factors, permuted, importance_estimator=LinearRegression(), random_state=0
    )
    for key in linear:
        assert_allclose(linear[key], linear_permuted[key])
    # The lasso (as docs/metrics.md advises) is invariant up to its solver's tolerance.
    lasso = dci(factors, noisy, importance_estimator=Lasso(alpha=0.01), random_state=0)
    lasso_permuted = dci(factors, permuted, importance_estimator=Lasso(alpha=0.01),
                         random_state=0)
    for key in lasso:
        assert_allclose(lasso[key], lasso_permuted[key], atol=1e-4)
    # Random forests see features in a random order: invariant up to the trees' randomness.
    forest = dci(factors, noisy, random_state=0)
    forest_permuted = dci(factors, permuted, random_state=0)
    for key in forest:
        assert_allclose(forest[key], forest_permuted[key], atol=0.03)


def _mutual_info(a, b):
    """Plug-in mutual information (nats) of two label arrays, from their contingency table."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))


# A small case: integer codes with at most 3 evenly spaced values, so that 3 equal-width
# bins put each value in its own bin and the binned mutual information is the plain one.
HAND_FACTORS = np.array(
    [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [0, 0], [1, 1], [1, 2], [0, 2]]
)
HAND_CODES = np.array(
    [[0, 0, 1], [0, 1, 1], [0, 2, 0], [1, 0, 0], [2, 1, 1],
     [2, 2, 0], [0, 0, 0], [1, 1, 1], [2, 2, 1], [0, 1, 0]]
)


def _hand_mutual_info():
    return np.array(
        [[_mutual_info(code, factor) for factor in HAND_FACTORS.T] for code in HAND_CODES.T]
    )


def test_mutual_info_gap_small_case_by_hand():
    # MIG = mean over factors of (largest - second largest MI) / H(factor).
    mi = _hand_mutual_info()
    expected = []
    for k, factor in enumerate(HAND_FACTORS.T):
        top = np.sort(mi[:, k])[::-1]
        expected.append((top[0] - top[1]) / entropy(np.bincount(factor)))
    assert_allclose(mutual_info_gap(HAND_FACTORS, HAND_CODES, n_bins=3), np.mean(expected))
    # Values of a continuous factor in 3 equal-width bins: the same as its classes here.
    assert_allclose(
        mutual_info_gap(HAND_FACTORS * 0.5, HAND_CODES, n_bins=3, discrete_factors=False),
        np.mean(expected),
    )


def test_modularity_small_case_by_hand():
    # Ridgeway & Mozer eq. 2: 1 - sum_{j != j*} I_ij^2 / (theta_i^2 (K - 1)), mean over codes.
    mi = _hand_mutual_info()
    expected = [1 - (np.sum(row**2) - row.max() ** 2) / row.max() ** 2 for row in mi]
    scores = modularity_explicitness(HAND_FACTORS, HAND_CODES, n_bins=3, test_size=0.5,
                                     random_state=0)
    assert_allclose(scores["modularity"], np.mean(expected))


def test_explicitness_single_class_in_training_split_raises():
    # A rare class: factor 0 is 1 on two samples only. When the split holds out both, the
    # training samples hold one class and no classifier can be fitted: a ValueError naming
    # the factor instead of the solver's error. Other splits score normally.
    factors = np.column_stack([np.zeros(40), np.tile([0.0, 1.0, 2.0, 3.0], 10)])
    codes = factors + 0.05 * np.random.RandomState(0).randn(40, 2)
    factors[:2, 0] = 1.0
    failed, scored = 0, 0
    for seed in range(20):  # both rare samples held out with probability 1/4 per seed
        try:
            scores = modularity_explicitness(factors, codes, test_size=0.5, random_state=seed)
        except ValueError as error:
            assert "Factor 0 has a single class in the training split" in str(error)
            failed += 1
        else:
            assert 0.5 <= scores["explicitness"] <= 1
            scored += 1
    assert failed and scored


def test_modularity_of_uninformative_code_is_zero():
    # A constant code carries no information and scores 0; an exact copy of a factor scores 1.
    factors = np.repeat(np.arange(4), 10)[:, None] * [1, 1]
    factors[:, 1] = np.tile(np.arange(2), 20)
    codes = np.column_stack([factors[:, 0], np.zeros(40)])
    scores = modularity_explicitness(factors, codes, random_state=0)
    assert_allclose(scores["modularity"], 0.5)


def test_single_factor_or_code_scores_one_by_definition_with_a_warning():
    # With one factor, DCI disentanglement and modularity are 1 for pure noise; with one
    # code, DCI completeness is: each says so with a UserWarning and keeps its value.
    rng = np.random.RandomState(0)
    factor = rng.randint(4, size=300).astype(float)
    noise = rng.randn(300, 5)
    with pytest.warns(UserWarning, match="DCI disentanglement is 1 by definition with a single"):
        scores = dci(factor, noise, random_state=0)
    assert scores["disentanglement"] == 1.0 and scores["completeness"] < 0.1
    with pytest.warns(UserWarning, match="Modularity is 1 by definition with a single factor"):
        assert modularity_explicitness(factor, noise, random_state=0)["modularity"] == 1.0
    three = rng.randint(4, size=(300, 3))
    with pytest.warns(UserWarning, match="DCI completeness is 1 by definition with a single code"):
        scores = dci(three, noise[:, :1], random_state=0)
    assert scores["completeness"] == 1.0 and scores["disentanglement"] < 0.1
    # Two factors and two codes or more: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dci(three[:, :2], noise[:, :2], random_state=0)
        modularity_explicitness(three[:, :2], noise[:, :2], random_state=0)
    # A scorer given a 1-D y warns but still scores.
    scorer = make_disentanglement_scorer(dci, key="disentanglement", random_state=0)
    with pytest.warns(UserWarning, match="single factor"):
        assert scorer(LinearCodes(np.eye(5)), noise, factor) == 1.0


def test_dci_small_case_by_hand():
    # Noiseless linear codes: least squares recovers R = |A^-1|, the importances; then D and C
    # follow Eastwood & Williams with entropies in base K and D, weighted by relative importance.
    rng = np.random.RandomState(0)
    factors = rng.randn(50, 2)
    A = np.array([[2.0, 0.5, 0.0], [0.25, 1.0, 1.5]])  # factors -> 3 codes
    codes = factors @ A
    # Least squares gives the minimum-norm solution W (codes -> factors): codes @ W = factors.
    W = np.linalg.pinv(A)
    assert_allclose(codes @ W, factors, atol=1e-10)
    R = np.abs(W)
    rho_code = R.sum(1) / R.sum()
    rho_factor = R.sum(0) / R.sum()
    d = np.sum(rho_code * (1 - entropy(R.T, base=2)))
    c = np.sum(rho_factor * (1 - entropy(R, base=3)))
    scores = dci(factors, codes, importance_estimator=LinearRegression(fit_intercept=False),
                 random_state=0)
    assert_allclose(scores["disentanglement"], d, rtol=1e-6)
    assert_allclose(scores["completeness"], c, rtol=1e-6)
    assert_allclose(scores["informativeness"], 1.0)


def test_dci_importances_from_coefficients_of_a_classifier(factors, codes):
    # A linear classifier's |coef_| (summed over classes) serves as importances too.
    linear = LogisticRegression(solver="newton-cholesky")
    scores = dci(factors, codes, importance_estimator=linear, random_state=0)
    rotated = dci(factors, codes @ ortho_group.rvs(3, random_state=1),
                  importance_estimator=linear, random_state=0)
    for key in ("disentanglement", "completeness"):
        assert scores[key] > 0.8 and scores[key] > rotated[key] + 0.3
    with pytest.raises(ValueError, match="feature_importances_ or coef_"):
        dci(factors, codes, importance_estimator=StandardScaler())


def test_sap_continuous_small_case_by_hand():
    # Continuous factors: S_ij = squared correlation of code i and factor j; SAP = mean top-2 gap.
    rng = np.random.RandomState(0)
    factors = rng.rand(30, 2)
    codes = np.column_stack([factors[:, 0] + 0.2 * rng.randn(30), rng.randn(30),
                             factors[:, 1] - factors[:, 0]])
    S = np.corrcoef(codes.T, factors.T)[:3, 3:] ** 2
    top = np.sort(S, axis=0)[::-1]
    expected = np.mean(top[0] - top[1])
    assert_allclose(sap_score(factors, codes, discrete_factors=False), expected)


def test_sap_discrete_small_case_by_hand():
    # A code equal to a binary factor has adjusted balanced accuracy 1, a constant code 0.
    factor = np.tile([0, 1], 20)
    assert_allclose(sap_score(factor[:, None], np.column_stack([factor, np.ones(40)]),
                              random_state=0), 1.0)
    # Two perfect codes: no gap.
    assert_allclose(sap_score(factor, np.column_stack([factor, 1 - factor]),
                              random_state=0), 0.0)


def test_sap_clips_codes_worse_than_chance_at_zero():
    # A 2-leaf tree on a noise code often does worse than chance on the held-out samples
    # (negative adjusted balanced accuracy); it predicts nothing and scores 0, so that SAP,
    # the gap to a perfect code, stays at most 1. A weakly informative code keeps its score.
    rng = np.random.RandomState(0)
    factor = rng.randint(2, size=200).astype(float)
    constant = np.ones(200)
    for other in (rng.randn(200), factor + rng.randn(200)):
        gaps = np.array([sap_score(factor, np.column_stack([factor, other]), random_state=seed)
                         for seed in range(10)])
        alone = np.array([sap_score(factor, np.column_stack([other, constant]),
                                    random_state=seed) for seed in range(10)])
        assert np.all((gaps >= 0) & (gaps <= 1))
        # Scores: perfect 1, constant 0 (chance), so the gaps are 1 - S and S - 0.
        assert_allclose(gaps, 1 - alone)
        assert np.all(alone >= 0)
    assert np.all(alone > 0)  # the informative code is not clipped


def test_sap_single_class_in_held_out_split_raises():
    # Balanced accuracy is undefined on held-out samples of one class (here a single held-out
    # sample): a ValueError naming the factor instead of NaN.
    factors = np.column_stack([[0.1, 0.5, 0.2, 0.9], [0, 0, 0, 1.0]])
    codes = [[0, 1], [0, 2], [0, 3], [1, 4.0]]
    for seed in range(4):
        with pytest.raises(ValueError, match="Factor 1 has a single class in the held-out"):
            sap_score(factors, codes, discrete_factors=[False, True], random_state=seed)


def test_mixed_discrete_and_continuous_factors(factors, codes):
    # A per-factor mask: continuous factors use R^2 (SAP) or binned values (MIG).
    mask = [True, False, True]
    assert sap_score(factors, codes, discrete_factors=mask, random_state=0) > 0.95
    assert mutual_info_gap(factors, codes, discrete_factors=mask) > 0.95


def test_metrics_are_reproducible(factors, codes):
    # Same random_state, same result; the estimates do depend on the seed.
    factors = factors[:200]
    noisy = codes[:200] + np.random.RandomState(3).randn(200, 3)
    for metric in (dci, sap_score, modularity_explicitness):
        assert metric(factors, noisy, random_state=5) == metric(factors, noisy, random_state=5)
    assert dci(factors, noisy, random_state=5) != dci(factors, noisy, random_state=6)


def test_single_factor_may_be_one_dimensional(factors, codes):
    # A 1-D factors array is one factor, as a 1-D y passed to a scorer.
    assert_allclose(mutual_info_gap(factors[:, 0], codes),
                    mutual_info_gap(factors[:, :1], codes))


@pytest.mark.parametrize(
    "metric",
    [mutual_info_gap, dci, sap_score, modularity_explicitness],
    ids=lambda metric: metric.__name__,
)
def test_supervised_input_validation(metric, factors, codes):
    # Shape mismatch, NaN, infinity and constant factors raise ValueErrors that name the problem.
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        metric(factors[:-1], codes)
    bad = codes.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metric(factors, bad)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        metric(factors, bad)
    bad_factors = factors.copy()
    bad_factors[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metric(bad_factors, codes)
    constant = factors.copy()
    constant[:, 1] = 2.0
    with pytest.raises(ValueError, match=r"Factors \[1\] are constant"):
        metric(constant, codes)
    with pytest.raises(ValueError, match="discrete_factors"):
        metric(factors, codes, discrete_factors=[True, False])


def test_supervised_parameter_validation(factors, codes):
    # Bad parameters raise ValueErrors; MIG and SAP need two codes for a gap.
    for n_bins in (1, 2.5, True):
        with pytest.raises(ValueError, match="n_bins"):
            mutual_info_gap(factors, codes, n_bins=n_bins)
    for metric in (mutual_info_gap, sap_score):
        with pytest.raises(ValueError, match="at least 2 codes"):
            metric(factors, codes[:, :1])
    for metric in (dci, sap_score, modularity_explicitness):
        with pytest.raises(ValueError, match="test_size"):
            metric(factors, codes, test_size=1.5)


# Unsupervised measures.


def test_gaussian_total_correlation_small_case_by_hand():
    # TC of a Gaussian = -1/2 log det(correlation matrix).
    rng = np.random.RandomState(0)
    codes = rng.randn(40, 3) @ [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]]
    expected = -0.5 * np.log(np.linalg.det(np.corrcoef(codes.T)))
    assert_allclose(gaussian_total_correlation(codes), expected)


def test_gaussian_total_correlation_validation_cases(codes):
    # Independent codes ~0, a mixing of them clearly more, noise ~0, order irrelevant.
    mixed = codes @ np.array([[1.0, 0.8, 0.5], [0.0, 1.0, 0.8], [0.0, 0.0, 1.0]])
    noise = np.random.RandomState(0).randn(N_SAMPLES, 3)
    assert gaussian_total_correlation(codes) < 0.01
    assert gaussian_total_correlation(noise) < 0.01
    assert gaussian_total_correlation(mixed) > 0.3
    assert_allclose(gaussian_total_correlation(mixed[:, [2, 0, 1]]),
                    gaussian_total_correlation(mixed))
    # Collapsed (constant) codes are left out; a duplicated code is infinitely dependent.
    with_constant = np.column_stack([mixed, np.full(N_SAMPLES, 3.0)])
    assert_allclose(gaussian_total_correlation(with_constant), gaussian_total_correlation(mixed))
    assert gaussian_total_correlation(np.column_stack([codes, codes[:, 0]])) > 10


def test_gaussian_total_correlation_needs_more_samples_than_codes():
    # With n_samples <= n_codes the sample covariance is singular for any codes, even
    # independent noise: a ValueError rather than an infinite total correlation.
    rng = np.random.RandomState(0)
    for n_samples in (3, 5):
        with pytest.raises(ValueError, match="more samples than codes that vary"):
            gaussian_total_correlation(rng.randn(n_samples, 5))
    assert np.isfinite(gaussian_total_correlation(rng.randn(6, 5)))
    # Constant codes do not count: 3 samples of 2 varying codes are enough.
    codes = np.column_stack([rng.randn(3, 2), np.ones((3, 3))])
    expected = -0.5 * np.log(np.linalg.det(np.corrcoef(codes[:, :2].T)))
    assert_allclose(gaussian_total_correlation(codes), expected)


def test_active_units_counts_by_hand():
    # Active = sample variance (ddof=1) above the threshold; order of codes irrelevant.
    rng = np.random.RandomState(0)
    codes = rng.randn(200, 5) * [1.0, 0.05, 0.5, 0.0, 0.2]
    expected = int(np.sum(np.var(codes, axis=0, ddof=1) > 0.01))
    assert active_units(codes) == expected == 3
    assert active_units(codes[:, ::-1]) == expected
    assert active_units(codes, threshold=0.001) == 4
    with pytest.raises(ValueError, match="threshold"):
        active_units(codes, threshold=-1)


@pytest.mark.parametrize("metric", [gaussian_total_correlation, active_units])
def test_unsupervised_input_validation(metric):
    # NaN and a single sample are rejected.
    codes = np.random.RandomState(0).randn(10, 2)
    codes[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metric(codes)
    with pytest.raises(ValueError, match="minimum of 2"):
        metric(np.ones((1, 2)))


# Intervention-based scores: a synthetic sampler whose "images" are the factor classes.


class GridSampler:
    """Factors -> images where the image is the factor classes themselves."""

    n_values = (6, 8, 10)

    def sample_classes(self, n_samples, random_state=None):
        rng = (random_state if isinstance(random_state, np.random.RandomState)
               else np.random.RandomState(random_state))
        return np.column_stack([rng.randint(k, size=n_samples) for k in self.n_values])

    def render(self, classes):
        return np.asarray(classes, dtype=float)


class Recording:
    """Wrap a sampler and record every batch of classes it renders."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.n_values = sampler.n_values
        self.rendered = []

    def sample_classes(self, n_samples, random_state=None):
        return self.sampler.sample_classes(n_samples, random_state=random_state)

    def render(self, classes):
        self.rendered.append(np.array(classes))
        return self.sampler.render(classes)


class LinearCodes:
    """A fitted 'estimator' whose codes are a fixed linear map of its inputs."""

    def __init__(self, weights):
        self.weights = np.asarray(weights, dtype=float)

    def transform(self, X):
        return np.asarray(X, dtype=float) @ self.weights


class NoiseCodes:
    """Codes independent of the inputs."""

    def __init__(self, n_codes, seed):
        self.n_codes = n_codes
        self.rng = np.random.RandomState(seed)

    def transform(self, X):
        return self.rng.randn(len(X), self.n_codes)


MIXING = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 0.5], [0.3, 1.0, -1.0]])
SMALL = {"batch_size": 16, "n_train": 300, "n_eval": 200, "random_state": 0}


def _factor_vae(estimator, sampler=None, **params):
    return factor_vae_score(estimator, sampler or GridSampler(),
                            n_variance_estimate=500, **{**SMALL, **params})


def _beta_vae(estimator, sampler=None, **params):
    return beta_vae_score(estimator, sampler or GridSampler(), **{**SMALL, **params})


@pytest.mark.parametrize("score", [_beta_vae, _factor_vae], ids=["beta_vae", "factor_vae"])
def test_intervention_scores_validation_cases(score):
    # Identity codes score 1, a permutation changes nothing, a mixing scores clearly lower,
    # noise scores at chance (1 / n_factors).
    identity = score(LinearCodes(np.eye(3)))
    assert identity == 1.0
    assert score(LinearCodes(np.eye(3)[:, [2, 0, 1]])) == 1.0
    assert score(LinearCodes(MIXING)) < 0.85
    assert abs(score(NoiseCodes(3, seed=0)) - 1 / 3) < 0.1


def test_factor_vae_prunes_collapsed_dimensions():
    # A collapsed dimension (std below 0.05) never votes: the score is unchanged at 1, and
    # a representation with every dimension collapsed scores 0.
    weights = np.column_stack([np.eye(3), 0.001 * np.ones(3)])
    assert _factor_vae(LinearCodes(weights)) == 1.0
    assert _factor_vae(LinearCodes(0.001 * np.eye(3))) == 0.0
    # Normalising by the global std: rescaling a dimension changes nothing.
    assert _factor_vae(LinearCodes(np.diag([100.0, 1.0, 0.1]))) == 1.0


def _fixed_factor(first, second):
    """Index of the factor shared by every row of ``first`` and ``second`` (one batch)."""
    shared = np.flatnonzero(np.all(first == second, axis=0))
    assert len(shared) == 1
    return shared[0]


class Centroid:
    """Codes of 16 x 16 sprites: the centroid (row, column) of the sprite."""

    def transform(self, X):
        grid = np.indices((16, 16)).reshape(2, -1)
        X = np.asarray(X, dtype=float)
        return X @ grid.T / X.sum(1, keepdims=True)


@pytest.mark.parametrize("sprites", [False, True], ids=["grid", "sprites16"])
def test_factor_vae_score_recomputed_from_the_batches(sprites):
    # Re-derive the score from the rendered batches: std over the first n_variance_estimate
    # samples, argmin of normalised variance per batch, majority vote, eval accuracy.
    batch_size, n_train, n_eval, n_var = 12, 60, 40, 200
    inner = SpritesSampler(image_size=16) if sprites else GridSampler()
    sampler = Recording(inner)
    estimator = Centroid() if sprites else LinearCodes(MIXING)
    score = factor_vae_score(estimator, sampler, batch_size=batch_size, n_train=n_train,
                             n_eval=n_eval, n_variance_estimate=n_var, random_state=0)
    classes = np.concatenate(sampler.rendered)
    assert len(classes) == n_var + batch_size * (n_train + n_eval)
    codes = estimator.transform(inner.render(classes))
    std = codes[:n_var].std(axis=0, ddof=1)
    batches = classes[n_var:].reshape(-1, batch_size, classes.shape[1])
    batch_codes = codes[n_var:].reshape(-1, batch_size, codes.shape[1])
    votes = np.zeros((2, len(sampler.n_values), codes.shape[1]))
    for b, (batch, z) in enumerate(zip(batches, batch_codes)):
        factor = _fixed_factor(batch, batch[:1])
        dim = np.argmin(np.var(z / std, axis=0, ddof=1))
        votes[int(b >= n_train), factor, dim] += 1
    majority = votes[0].argmax(axis=0)
    expected = sum(votes[1, majority[d], d] for d in range(codes.shape[1])) / n_eval
    assert score == pytest.approx(expected, abs=1e-12)


def test_beta_vae_score_recomputed_from_the_pairs():
    # Re-derive the score: features mean |z1 - z2| over pairs sharing one factor, label the
    # shared factor, logistic regression on standardised features, accuracy on eval points.
    batch_size, n_train, n_eval = 8, 80, 40
    sampler = Recording(GridSampler())
    estimator = LinearCodes(MIXING)
    score = beta_vae_score(estimator, sampler, batch_size=batch_size, n_train=n_train,
                           n_eval=n_eval, random_state=0)
    features, labels = [], []
    for classes in sampler.rendered:  # one call per chunk: all first members, then seconds
        n_factors = classes.shape[1]
        first, second = classes.reshape(2, -1, batch_size, n_factors)
        z = estimator.transform(classes).reshape(2, -1, batch_size, 3)
        features.append(np.mean(np.abs(z[0] - z[1]), axis=1))
        labels += [_fixed_factor(a, b) for a, b in zip(first, second)]
    features, labels = np.concatenate(features), np.array(labels)
    assert len(labels) == n_train + n_eval
    classifier = make_pipeline(
        StandardScaler(), LogisticRegression(solver="newton-cholesky", max_iter=1000)
    )
    classifier.fit(features[:n_train], labels[:n_train])
    assert score == classifier.score(features[n_train:], labels[n_train:])


def test_intervention_scores_on_sprites():
    # On real sprites, a centroid "representation" finds the two position factors only.
    sampler = SpritesSampler(image_size=16)
    estimator = Centroid()
    beta = beta_vae_score(estimator, sampler, batch_size=16, n_train=200, n_eval=100,
                          random_state=0)
    factor = factor_vae_score(estimator, sampler, batch_size=16, n_train=200, n_eval=100,
                              n_variance_estimate=300, random_state=0)
    # Two of five factors are identified: about 2/5 for the majority vote, more for beta-VAE.
    assert 0.3 < factor < 0.55
    assert 0.35 < beta < 0.9


@pytest.mark.parametrize("score", [_beta_vae, _factor_vae], ids=["beta_vae", "factor_vae"])
def test_intervention_scores_are_reproducible(score):
    # Same random_state, same draws and same score.
    estimator = LinearCodes(MIXING)
    assert score(estimator, random_state=3) == score(estimator, random_state=3)


@pytest.mark.parametrize("metric", [beta_vae_score, factor_vae_score])
def test_intervention_input_validation(metric):
    # A sampler without the protocol, bad sizes and bad transforms raise ValueErrors.
    estimator = LinearCodes(np.eye(3))
    with pytest.raises(ValueError, match="sampler must have n_values"):
        metric(estimator, object())
    with pytest.raises(ValueError, match="batch_size"):
        metric(estimator, GridSampler(), batch_size=0)
    with pytest.raises(ValueError, match="n_train"):
        metric(estimator, GridSampler(), n_train=1.5)

    class Flat:
        def transform(self, X):
            return np.ones(len(X))

    with pytest.raises(ValueError, match="must return an array of shape"):
        metric(Flat(), GridSampler(), batch_size=4, n_train=10, n_eval=10)
