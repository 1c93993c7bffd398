"""``metrics.udr_score`` and its core against a loop-by-loop port of disentanglement_lib."""

import itertools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import ortho_group, spearmanr
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError, UndefinedMetricWarning
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler

from sklearn_betavae import BetaVAE
from sklearn_betavae.metrics import udr_score
from sklearn_betavae.metrics._udr import _relative_strength, _udr_from_codes

N_SAMPLES = 300


def _reference_udr(codes_list, kl_list, correlation, kl_threshold=0.01):
    """disentanglement_lib's compute_udr_sklearn, written out with loops over entries."""
    n_models = len(codes_list)
    reps, masks = [], []
    for codes, kl in zip(codes_list, kl_list):
        standardised = StandardScaler().fit_transform(codes)
        reps.append(standardised * (np.asarray(kl) > 0.01))
        masks.append(np.asarray(kl) > kl_threshold)
    pairwise = np.zeros((n_models, n_models))
    for i in range(n_models):
        for j in range(n_models):
            if i == j:
                continue
            a, b = reps[i], reps[j]
            matrix = np.zeros((a.shape[1], b.shape[1]))
            if correlation == "lasso":
                coef = Lasso(alpha=0.1).fit(a, b).coef_.reshape(b.shape[1], a.shape[1])
                for row in range(a.shape[1]):
                    for col in range(b.shape[1]):
                        matrix[row, col] = abs(coef[col, row])
            else:
                for row in range(a.shape[1]):
                    for col in range(b.shape[1]):
                        with warnings.catch_warnings():  # zeroed dimensions are constant
                            warnings.simplefilter("ignore")
                            value = spearmanr(a[:, row], b[:, col]).statistic
                        matrix[row, col] = abs(value)
            matrix = matrix[masks[i]][:, masks[j]]
            if matrix.size == 0:  # disentanglement_lib fails here; the package scores 0
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                halves = [np.nanmean(np.nan_to_num(np.max(matrix, axis) ** 2
                                                   / np.sum(matrix, axis)))
                          for axis in (0, 1)]
            pairwise[i, j] = (halves[0] + halves[1]) / 2
    return np.array([np.median([pairwise[k, j] for k in range(n_models) if k != j])
                     for j in range(n_models)])


def _signed_permutation(codes, seed, noise=0.0):
    """The codes with their columns permuted, sign-flipped, rescaled and slightly noised."""
    rng = np.random.RandomState(seed)
    d = codes.shape[1]
    out = codes[:, rng.permutation(d)] * rng.choice([-1.0, 1.0], d) * rng.uniform(0.5, 3.0, d)
    return out + noise * rng.randn(*codes.shape)


@pytest.fixture(scope="module")
def base_codes():
    # A full factorial grid of four factors: its columns are exactly uncorrelated, in
    # ranks too, as the factors of dSprites are; a perfect code of them is the grid.
    grid = np.array(list(itertools.product(range(5), range(4), range(6), range(3))), float)
    return StandardScaler().fit_transform(grid)


class _LinearEncoder(TransformerMixin, BaseEstimator):
    """A fitted 'VAE' whose posterior means are ``X @ weights`` and whose KL is fixed."""

    def __init__(self, weights=None, kl=None):
        self.weights = weights
        self.kl = kl

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.asarray(X) @ self.weights

    def kl_per_dim(self, X):
        return np.tile(self.kl, (len(X), 1))


def test_relative_strength_extremes():
    # A permutation matrix scores 1, a constant d x d matrix 1/d, an empty one 0.
    assert _relative_strength(np.eye(4)[[2, 0, 3, 1]]) == pytest.approx(1.0)
    assert _relative_strength(np.ones((5, 5))) == pytest.approx(0.2)
    assert _relative_strength(np.zeros((0, 3))) == 0.0
    # A zero column counts as 0 in its half, not as NaN.
    assert _relative_strength(np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx(0.5)


def test_signed_permuted_copies_score_one(base_codes):
    # Permuted, sign-flipped, rescaled copies of one code agree perfectly: Spearman gives 1,
    # Lasso its maximum 1 - alpha (the penalty shrinks each weight of 1 by alpha = 0.1).
    codes = [_signed_permutation(base_codes, seed) for seed in range(4)]
    kl = [np.ones(4)] * 4
    for correlation, best in (("spearman", 1.0), ("lasso", 0.9)):
        scores, pairwise = _udr_from_codes(codes, kl, correlation=correlation)
        assert_allclose(scores, best, atol=1e-12)
        assert np.isnan(np.diag(pairwise)).all()


def test_unrelated_codes_score_near_zero():
    # Independent codes of independent models share nothing.
    rng = np.random.RandomState(1)
    codes = [rng.randn(N_SAMPLES, 4) for _ in range(4)]
    kl = [np.ones(4)] * 4
    spearman, _ = _udr_from_codes(codes, kl, correlation="spearman")
    lasso, _ = _udr_from_codes(codes, kl, correlation="lasso")
    assert (spearman < 0.1).all()
    assert_allclose(lasso, 0.0, atol=0.01)


def test_mixed_codes_score_in_between(base_codes):
    # A rotation mixing the dimensions lowers the agreement, more rotation lowers it more.
    def rotated(angle):
        rotation = np.eye(4)
        rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        return base_codes @ rotation

    kl = [np.ones(4)] * 3
    previous = 1.0
    for angle in (np.pi / 16, np.pi / 8, np.pi / 4):
        codes = [base_codes, _signed_permutation(base_codes, 1), rotated(angle)]
        scores, _ = _udr_from_codes(codes, kl, correlation="spearman")
        assert 0.3 < scores[2] < previous - 0.02
        previous = scores[2]
    # A full random rotation of all four dimensions sits well between copies and noise.
    codes = [base_codes, _signed_permutation(base_codes, 2),
             base_codes @ ortho_group.rvs(4, random_state=0)]
    scores, _ = _udr_from_codes(codes, kl, correlation="spearman")
    assert 0.2 < scores[2] < 0.8


def test_uninformative_dimensions_are_dropped(base_codes):
    # Noise dimensions whose KL is at or below the threshold change nothing.
    rng = np.random.RandomState(3)
    codes = [_signed_permutation(base_codes, seed, noise=0.3) for seed in range(3)]
    padded = [np.hstack([c, rng.randn(len(c), 2)]) for c in codes]
    kl = [np.ones(4)] * 3
    kl_padded = [np.r_[np.ones(4), 0.01, 0.001]] * 3
    for correlation in ("spearman", "lasso"):
        expected, _ = _udr_from_codes(codes, kl, correlation=correlation)
        got, _ = _udr_from_codes(padded, kl_padded, correlation=correlation)
        assert_allclose(got, expected, rtol=1e-12)
        # Kept, the noise dimensions pull the score down.
        kept, _ = _udr_from_codes(padded, kl_padded, correlation=correlation, kl_threshold=0.0)
        assert (kept < expected - 0.05).all()


@pytest.mark.parametrize("correlation", ["spearman", "lasso"])
def test_matches_reference_implementation(correlation):
    # Random mixtures with collapsed and extra dimensions: same scores as the port.
    rng = np.random.RandomState(4)
    factors = rng.randn(N_SAMPLES, 3)
    codes, kl = [], []
    for m in range(5):
        mixing = np.eye(3) + rng.uniform(-0.6, 0.6, (3, 3)) * (m % 3) / 2
        informative = factors @ mixing + 0.2 * rng.randn(N_SAMPLES, 3)
        extra = rng.randn(N_SAMPLES, 2)
        codes.append(np.hstack([informative, extra])[:, rng.permutation(5)])
        kl.append(rng.choice([0.0, 0.005, 0.5, 2.0], 5))
    kl[0][:] = 0.0  # one model collapsed entirely: its pairs score 0
    expected = _reference_udr(codes, kl, correlation)
    got, _ = _udr_from_codes(codes, kl, correlation=correlation)
    assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert got[0] == 0.0 and got.max() > 0.1


def test_spearman_matches_reference_at_higher_threshold():
    # With Spearman, dropping instead of zeroing is exact at any threshold above 0.01 too.
    rng = np.random.RandomState(5)
    codes = [rng.randn(N_SAMPLES, 4) @ rng.randn(4, 4) for _ in range(3)]
    kl = [rng.uniform(0.0, 0.1, 4) for _ in range(3)]
    got, _ = _udr_from_codes(codes, kl, correlation="spearman", kl_threshold=0.03)
    assert_allclose(got, _reference_udr(codes, kl, "spearman", kl_threshold=0.03), rtol=1e-10)


def test_constant_dimension_correlates_with_nothing(base_codes):
    # An informative but constant dimension gets zero entries (disentanglement_lib: NaN,
    # which zeroes its whole row and column); the other dimensions still match.
    codes = [_signed_permutation(base_codes, seed) for seed in range(3)]
    codes[2] = np.hstack([codes[2], np.full((len(base_codes), 1), 0.3)])
    kl = [np.ones(4), np.ones(4), np.ones(5)]
    _, pairwise = _udr_from_codes(codes, kl)
    # Rows of model 2 against 4 columns: each column 1, each row 1 but the constant one 0.
    assert_allclose(pairwise[2, 0], (1.0 + 4 / 5) / 2)
    assert_allclose(pairwise[0, 1], 1.0)


def test_all_collapsed_scores_zero_with_a_warning(base_codes):
    # When no model keeps an informative dimension, all score 0 and a warning says why.
    collapsed = [_LinearEncoder(np.eye(4), np.full(4, 0.01)).fit(base_codes) for _ in range(3)]
    with pytest.warns(UndefinedMetricWarning, match="No code dimension of any model"):
        assert_array_equal(udr_score(collapsed, base_codes), 0.0)
    with pytest.warns(UndefinedMetricWarning, match="kl_threshold=5"):
        _udr_from_codes([base_codes] * 2, [np.ones(4)] * 2, kl_threshold=5)


def test_udr_score_calls_the_estimators(base_codes):
    # udr_score encodes X with each model and uses the mean of kl_per_dim to drop dimensions.
    X = base_codes
    weights = [np.eye(4)[:, np.random.RandomState(s).permutation(4)] * [1, -2, 3, -1]
               for s in range(3)]
    models = [_LinearEncoder(w, np.ones(4)).fit(X) for w in weights]
    assert_allclose(udr_score(models, X), 1.0, atol=1e-12)
    noisy = _LinearEncoder(np.eye(4, 5), np.r_[np.ones(4), 0.0]).fit(X)  # 5th dim: all zeros
    assert_allclose(udr_score([*models, noisy], X, correlation="lasso"), 0.9, atol=1e-12)


def test_udr_score_of_fitted_vaes():
    # On real VAEs: the core on their codes and mean KL; two fits of one seed score alike.
    X = load_digits().data[:200] / 16
    vae = BetaVAE(n_components=3, hidden_layer_sizes=(32,), max_epochs=5, learning_rate=3e-3)
    models = [clone(vae).set_params(random_state=s).fit(X) for s in (0, 0, 1)]
    scores = udr_score(models, X, correlation="lasso")
    expected, _ = _udr_from_codes([m.transform(X) for m in models],
                                  [m.kl_per_dim(X).mean(0) for m in models], correlation="lasso")
    assert_allclose(scores, expected, rtol=1e-12)
    assert scores[0] == scores[1] != scores[2]
    assert ((scores > 0) & (scores <= 0.9)).all()


def test_udr_score_leaves_out_the_conditions():
    # A conditional VAE's transform appends its condition columns: only the codes count.
    X, y = load_digits(return_X_y=True)
    XC = np.hstack([X[:100] / 16, np.eye(10)[y[:100]]])
    vae = BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=1,
                  condition_features=list(range(64, 74)))
    models = [clone(vae).set_params(random_state=s).fit(XC) for s in range(2)]
    expected, _ = _udr_from_codes([m.transform(XC)[:, :2] for m in models],
                                  [m.kl_per_dim(XC).mean(0) for m in models])
    assert_allclose(udr_score(models, XC), expected, rtol=1e-12)


def test_udr_score_errors(base_codes):
    # Bad input raises a ValueError that names the problem.
    X = base_codes
    fitted = [_LinearEncoder(np.eye(4), np.ones(4)).fit(X) for _ in range(2)]
    with pytest.raises(ValueError, match="at least 2 fitted models"):
        udr_score(fitted[:1], X)
    with pytest.raises(ValueError, match="list of fitted models"):
        udr_score(fitted[0], X)
    with pytest.raises(ValueError, match="correlation must be"):
        udr_score(fitted, X, correlation="pearson")
    with pytest.raises(ValueError, match="kl_threshold must be"):
        udr_score(fitted, X, kl_threshold=-1)
    with pytest.raises(NotFittedError, match=r"estimators\[1\] \(BetaVAE\) is not fitted"):
        udr_score([fitted[0], BetaVAE()], X)
    with pytest.raises(ValueError, match="no kl_per_dim method"):
        udr_score([fitted[0], StandardScaler().fit(X)], X)
    with pytest.raises(ValueError, match="kl_per_dim"):
        udr_score([fitted[0], _LinearEncoder(np.eye(4), np.ones(3)).fit(X)], X)
    conditional = _LinearEncoder(np.eye(4), np.ones(4)).fit(X)
    conditional.condition_indices_ = np.array([0])  # 4 columns: 3 codes and 1 condition
    with pytest.raises(ValueError, match="without its 1 condition columns has shape"):
        udr_score([fitted[0], conditional], X)
    with pytest.raises(ValueError, match="1 sample"):
        udr_score(fitted, X[:1])


def test_udr_score_rejects_mismatched_x():
    # X that the models were not fitted on (wrong number of features) is rejected by them.
    X = load_digits().data[:64] / 16
    models = [BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=1,
                      random_state=s).fit(X) for s in range(2)]
    with pytest.raises(ValueError, match="features"):
        udr_score(models, X[:, :10])


def test_core_rejects_inconsistent_codes():
    # The core checks that codes and KL vectors line up.
    codes = [np.ones((10, 2)), np.ones((9, 2))]
    with pytest.raises(ValueError, match="same samples"):
        _udr_from_codes(codes, [np.ones(2)] * 2)
    with pytest.raises(ValueError, match="one value per code dimension"):
        _udr_from_codes([np.ones((10, 2))] * 2, [np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match="at least 2"):
        _udr_from_codes([np.ones((10, 2))], [np.ones(2)])
