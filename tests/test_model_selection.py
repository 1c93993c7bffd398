"""``model_selection.UDRSelector``: seeds, selection, delegation and grid search."""

import pickle
import warnings

import numpy as np
import pytest
from joblib import parallel_backend
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import ortho_group
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError, UndefinedMetricWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_html_repr

from sklearn_betavae import BetaVAE
from sklearn_betavae.metrics import udr_score
from sklearn_betavae.model_selection import UDRSelector


def _vae(**params):
    defaults = dict(n_components=3, hidden_layer_sizes=(16,), max_epochs=3, batch_size=32,
                    learning_rate=3e-3)
    return BetaVAE(**{**defaults, **params})


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:150] / 16


@pytest.fixture(scope="module")
def selector(X):
    return UDRSelector(_vae(), n_seeds=3, random_state=0).fit(X)


class _SeededEncoder(TransformerMixin, BaseEstimator):
    """A fitted 'VAE' whose code is the input, permuted by an even seed, rotated by an odd one."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y=None):
        d = X.shape[1]
        rng = np.random.RandomState(self.random_state)
        if self.random_state % 2 == 0:
            self.weights_ = np.eye(d)[:, rng.permutation(d)] * rng.choice([-1, 1], d)
        else:
            self.weights_ = ortho_group.rvs(d, random_state=rng)
        self.n_features_in_ = d
        return self

    def transform(self, X):
        return X @ self.weights_

    def kl_per_dim(self, X):
        return np.ones((len(X), self.n_features_in_))


def test_members_are_clones_fitted_from_drawn_seeds(selector, X):
    # Each member is the estimator cloned with a seed drawn from random_state, fitted on X.
    seeds = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=3)
    assert [m.random_state for m in selector.estimators_] == seeds.tolist()
    assert not hasattr(selector.estimator, "net_")
    alone = clone(selector.estimator).set_params(random_state=int(seeds[1])).fit(X)
    assert_array_equal(selector.estimators_[1].transform(X), alone.transform(X))


def test_best_estimator_has_the_highest_udr(selector, X):
    # The scores are udr_score of the members on the training data; the best is their argmax.
    assert_allclose(selector.udr_scores_, udr_score(selector.estimators_, X))
    assert selector.best_index_ == int(np.argmax(selector.udr_scores_))
    assert selector.best_estimator_ is selector.estimators_[selector.best_index_]
    assert selector.n_features_in_ == X.shape[1]


def test_methods_delegate_to_the_best_estimator(selector, X):
    # transform, inverse_transform, sample, score_samples and feature names are the best member's.
    best = selector.best_estimator_
    Z = selector.transform(X)
    assert_array_equal(Z, best.transform(X))
    assert_array_equal(selector.inverse_transform(Z), best.inverse_transform(Z))
    assert_array_equal(selector.sample(4, random_state=1), best.sample(4, random_state=1))
    assert_array_equal(selector.score_samples(X), best.score_samples(X))
    assert_array_equal(selector.get_feature_names_out(), ["betavae0", "betavae1", "betavae2"])
    assert_array_equal(selector.fit_transform(X), Z)


def test_score_is_mean_udr_on_the_given_data(selector, X):
    # score(X) averages the members' UDR on X, not on the training data.
    X_new = load_digits().data[150:300] / 16
    assert selector.score(X_new) == pytest.approx(udr_score(selector.estimators_, X_new).mean())
    assert selector.score(X_new) != pytest.approx(selector.udr_scores_.mean())


def test_selects_the_members_that_agree():
    # Members whose codes are signed permutations of one another outrank rotated ones.
    X = StandardScaler().fit_transform(np.random.RandomState(0).randn(200, 4))
    selector = UDRSelector(_SeededEncoder(), n_seeds=8, random_state=3).fit(X)
    agree = np.array([m.random_state % 2 == 0 for m in selector.estimators_])
    assert 2 <= agree.sum() <= 6
    assert selector.udr_scores_[agree].min() > selector.udr_scores_[~agree].max()
    assert agree[selector.best_index_]


def test_same_random_state_same_selection(selector, X):
    # Refitting with the same random_state gives the same members and selection; threads too.
    with parallel_backend("threading"):
        again = clone(selector).set_params(n_jobs=2).fit(X)
    assert_array_equal(again.udr_scores_, selector.udr_scores_)
    assert_array_equal(again.transform(X), selector.transform(X))


def test_pickle_round_trip(selector, X):
    # A pickled selector gives the same transform and score.
    restored = pickle.loads(pickle.dumps(selector))
    assert_array_equal(restored.transform(X), selector.transform(X))
    assert restored.score(X) == selector.score(X)


def test_grid_search_selects_beta_by_udr(X):
    # GridSearchCV over estimator__beta scores each setting by the mean UDR of its seeds
    # (a setting whose every posterior collapses scores 0, with a warning, and ranks last).
    grid = {"estimator__beta": [0.5, 4.0]}
    cv = KFold(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        search = GridSearchCV(UDRSelector(_vae(), n_seeds=2, random_state=0), grid, cv=cv,
                              refit=False)
        search.fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    assert search.best_params_ == {"estimator__beta": grid["estimator__beta"][np.argmax(scores)]}
    # The first fold's score of the first setting, recomputed by hand.
    train, test = next(cv.split(X))
    by_hand = UDRSelector(_vae(beta=0.5), n_seeds=2, random_state=0).fit(X[train])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(by_hand.score(X[test]))


@pytest.fixture(scope="module")
def conditional_data():
    # Pixels, then the one-hot label as 10 condition columns, as an array and a DataFrame.
    pd = pytest.importorskip("pandas")
    digits = load_digits()
    XC = np.hstack([digits.data[:100] / 16, np.eye(10)[digits.target[:100]]])
    names = [f"p{i}" for i in range(64)] + [f"d{i}" for i in range(10)]
    return XC, pd.DataFrame(XC, columns=names)


def test_conditional_members_by_index_and_by_name(conditional_data):
    # Members with condition_features, given as indices or as the names of a DataFrame's
    # columns (which they receive as is), are compared on their codes alone.
    XC, df = conditional_data
    by_index = UDRSelector(_vae(max_epochs=1, condition_features=list(range(64, 74))),
                           n_seeds=2, random_state=0).fit(XC)
    by_name = UDRSelector(_vae(max_epochs=1, condition_features=list(df.columns[64:])),
                          n_seeds=2, random_state=0).fit(df)
    assert_array_equal(by_name.udr_scores_, by_index.udr_scores_)
    assert_allclose(by_name.udr_scores_, udr_score(by_name.estimators_, df))
    assert by_name.n_features_in_ == by_index.n_features_in_ == 74
    assert_array_equal(by_name.feature_names_in_, df.columns)
    assert not hasattr(by_index, "feature_names_in_")
    # transform, inverse_transform, score_samples and score take the DataFrame too, and
    # hand it on with its names (no "X does not have valid feature names" warning).
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        Z = by_name.transform(df)
        assert_array_equal(by_name.score_samples(df), by_name.best_estimator_.score_samples(df))
        assert by_name.score(df) == pytest.approx(by_name.udr_scores_.mean())
    assert Z.shape == (100, 3 + 10)
    assert_array_equal(Z, by_index.transform(XC))
    assert_array_equal(Z[:, 3:], XC[:, 64:])
    assert_array_equal(by_name.inverse_transform(Z), by_name.best_estimator_.inverse_transform(Z))
    assert_array_equal(by_name.get_feature_names_out()[3:], df.columns[64:])


def test_sample_forwards_conditions(conditional_data):
    # sample(n, random_state, conditions) is the selected model's, and needs the conditions.
    XC, _ = conditional_data
    selector = UDRSelector(_vae(max_epochs=1, condition_features=list(range(64, 74))),
                           n_seeds=2, random_state=0).fit(XC)
    three = np.eye(10)[3]
    samples = selector.sample(4, random_state=1, conditions=three)
    assert_array_equal(samples,
                       selector.best_estimator_.sample(4, random_state=1, conditions=three))
    assert_array_equal(samples[:, 64:], np.tile(three, (4, 1)))
    with pytest.raises(ValueError, match="pass the conditions"):
        selector.sample(4)


def test_html_repr_links_to_the_api_page():
    # The HTML representation links to UDRSelector's page, as the VAEs link to theirs.
    selector = UDRSelector(_vae())
    link = selector._get_doc_link()
    assert link == BetaVAE()._get_doc_link().replace(
        "sklearn_betavae.BetaVAE", "sklearn_betavae.model_selection.UDRSelector")
    assert link in estimator_html_repr(selector)


def test_errors(X):
    # Unusable estimators, too few seeds and an unfitted selector raise clear errors.
    with pytest.raises(ValueError, match="kl_per_dim"):
        UDRSelector(PCA(2)).fit(X)
    with pytest.raises(ValueError, match="n_seeds"):
        UDRSelector(_vae(), n_seeds=1).fit(X)
    with pytest.raises(ValueError, match="correlation"):
        UDRSelector(_vae(), correlation="pearson").fit(X)

    class NoSeed(_SeededEncoder):
        def __init__(self):
            pass

    with pytest.raises(ValueError, match="no random_state parameter"):
        UDRSelector(NoSeed()).fit(X)
    with pytest.raises(NotFittedError):
        UDRSelector(_vae()).transform(X)
    assert not hasattr(UDRSelector(StandardScaler()), "sample")
