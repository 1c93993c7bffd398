"""Scorers of ``sklearn_betavae.metrics`` inside a real GridSearchCV over BetaVAE."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_betavae import BetaVAE
from sklearn_betavae.datasets import SpritesSampler, make_sprites
from sklearn_betavae.metrics import (
    active_units,
    dci,
    elbo_scorer,
    factor_vae_score,
    gaussian_total_correlation,
    make_disentanglement_scorer,
    mutual_info_gap,
    rate_scorer,
    reconstruction_scorer,
)

GRID = {"beta": [0.5, 8.0]}


def _vae(**params):
    defaults = {"n_components": 4, "hidden_layer_sizes": (16,), "max_epochs": 2, "random_state": 0}
    return BetaVAE(**{**defaults, **params})


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny networks: a second thread only adds contention on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sprites():
    return make_sprites(160, image_size=16, random_state=0)


@pytest.fixture(scope="module")
def fitted(sprites):
    return _vae().fit(sprites[0])


def test_disentanglement_scorer_in_grid_search(sprites):
    # The scorer compares held-out codes with held-out factors: cv_results_ equals MIG
    # recomputed by hand on each split, and beta is selected by it.
    X, factors = sprites
    cv = KFold(2)
    search = GridSearchCV(_vae(), GRID, scoring=make_disentanglement_scorer(mutual_info_gap),
                          cv=cv).fit(X, factors)
    for i, params in enumerate(search.cv_results_["params"]):
        for split, (train, test) in enumerate(cv.split(X)):
            model = clone(_vae()).set_params(**params).fit(X[train])
            expected = mutual_info_gap(factors[test], model.transform(X[test]))
            assert_allclose(search.cv_results_[f"split{split}_test_score"][i], expected)
    best = np.argmax(search.cv_results_["mean_test_score"])
    assert search.best_params_ == search.cv_results_["params"][best]


def test_multimetric_grid_search_reports_rate_distortion(sprites):
    # One search reports disentanglement and the rate-distortion trade-off; refit picks by name.
    X, factors = sprites
    scoring = {
        "mig": make_disentanglement_scorer(mutual_info_gap),
        "dci_d": make_disentanglement_scorer(dci, key="disentanglement", random_state=0),
        "tc": make_disentanglement_scorer(gaussian_total_correlation, greater_is_better=False),
        "reconstruction": reconstruction_scorer,
        "rate": rate_scorer,
        "elbo": elbo_scorer,
    }
    search = GridSearchCV(_vae(), GRID, scoring=scoring, refit="reconstruction", cv=2)
    search.fit(X, factors)
    results = search.cv_results_
    for name in scoring:
        assert np.all(np.isfinite(results[f"mean_test_{name}"])), name
    # ELBO = reconstruction - rate on every split (each the negative or plain mean in nats).
    for split in range(2):
        assert_allclose(
            results[f"split{split}_test_elbo"],
            results[f"split{split}_test_reconstruction"] - results[f"split{split}_test_rate"],
        )
    assert np.all(results["mean_test_rate"] >= 0)
    assert np.all(results["mean_test_tc"] <= 0)
    # A larger beta buys a smaller rate: the trade-off is visible in cv_results_.
    assert results["mean_test_rate"][1] < results["mean_test_rate"][0]
    assert search.best_index_ == np.argmax(results["mean_test_reconstruction"])
    assert search.best_params_ == results["params"][search.best_index_]
    assert hasattr(search.best_estimator_, "n_components")


def test_rate_distortion_scorer_signs(fitted, sprites):
    # reconstruction = -mean distortion (higher is better), rate = +mean KL (reported as is),
    # elbo = -mean(rate + distortion) = estimator.score.
    X = sprites[0]
    rate, distortion = fitted.rate_distortion(X)
    assert_allclose(reconstruction_scorer(fitted, X), -distortion.mean())
    assert reconstruction_scorer(fitted, X) < 0
    assert_allclose(rate_scorer(fitted, X), rate.mean())
    assert rate_scorer(fitted, X) > 0
    assert_allclose(elbo_scorer(fitted, X), -(rate + distortion).mean())
    assert_allclose(elbo_scorer(fitted, X), fitted.score(X))


def test_disentanglement_scorer_kinds(fitted, sprites):
    # Factors-first metrics use y, codes-only metrics ignore it, greater_is_better negates.
    X, factors = sprites
    codes = fitted.transform(X)
    assert_allclose(make_disentanglement_scorer(mutual_info_gap, n_bins=10)(fitted, X, factors),
                    mutual_info_gap(factors, codes, n_bins=10))
    assert make_disentanglement_scorer(active_units)(fitted, X) == active_units(codes)
    tc = make_disentanglement_scorer(gaussian_total_correlation, greater_is_better=False)
    assert_allclose(tc(fitted, X, factors), -gaussian_total_correlation(codes))
    scores = dci(factors, codes, random_state=0)
    for key, value in scores.items():
        scorer = make_disentanglement_scorer(dci, key=key, random_state=0)
        assert_allclose(scorer(fitted, X, factors), value)
    # A single factor as a 1-D y.
    assert_allclose(make_disentanglement_scorer(mutual_info_gap)(fitted, X, factors[:, 3]),
                    mutual_info_gap(factors[:, 3:4], codes))


def test_disentanglement_scorer_needs_factors(fitted, sprites):
    # y=None raises an error saying that the factors go in y, also from GridSearchCV.fit(X).
    X = sprites[0]
    scorer = make_disentanglement_scorer(mutual_info_gap)
    with pytest.raises(ValueError, match="pass them as y"):
        scorer(fitted, X)
    search = GridSearchCV(_vae(max_epochs=1), {"beta": [1.0]}, scoring=scorer, cv=2,
                          error_score="raise")
    with pytest.raises(ValueError, match="pass them as y"):
        search.fit(X)


def test_disentanglement_scorer_key_errors(fitted, sprites):
    # A dict-valued metric needs key=, a float-valued one refuses it; metric must be callable.
    X, factors = sprites
    with pytest.raises(ValueError, match="pass key="):
        make_disentanglement_scorer(dci)(fitted, X, factors)
    with pytest.raises(ValueError, match="returns a single score"):
        make_disentanglement_scorer(mutual_info_gap, key="mig")(fitted, X, factors)
    with pytest.raises(KeyError):
        make_disentanglement_scorer(dci, key="modularity")(fitted, X, factors)
    with pytest.raises(TypeError, match="callable"):
        make_disentanglement_scorer("mig")


def test_intervention_scorer_in_grid_search(sprites):
    # A metric taking the estimator renders fresh samples itself: X and y are not used, so
    # every fold of a candidate gets the same score.
    X, factors = sprites
    sampler = SpritesSampler(image_size=16)
    scorer = make_disentanglement_scorer(
        factor_vae_score, sampler=sampler, batch_size=8, n_train=30, n_eval=30,
        n_variance_estimate=100, random_state=0,
    )
    search = GridSearchCV(_vae(max_epochs=1), GRID, scoring=scorer, cv=2).fit(X, factors)
    results = search.cv_results_
    assert np.all((results["mean_test_score"] >= 0) & (results["mean_test_score"] <= 1))
    model = _vae(max_epochs=1, beta=0.5).fit(X[80:])
    expected = factor_vae_score(model, sampler, batch_size=8, n_train=30, n_eval=30,
                                n_variance_estimate=100, random_state=0)
    assert_allclose(results["split0_test_score"][0], expected)


def test_scorer_repr_and_pickle(fitted, sprites):
    # The repr shows the call that made it; a pickled scorer gives the same score.
    X, factors = sprites
    scorer = make_disentanglement_scorer(dci, key="completeness", random_state=0)
    assert repr(scorer) == "make_disentanglement_scorer(dci, key='completeness', random_state=0)"
    negated = make_disentanglement_scorer(gaussian_total_correlation, greater_is_better=False)
    assert "greater_is_better=False" in repr(negated)
    restored = pickle.loads(pickle.dumps(scorer))
    assert restored(fitted, X, factors) == scorer(fitted, X, factors)


def test_rate_distortion_scorers_unwrap_pipelines_and_searches():
    # A Pipeline ending in a VAE: its other steps transform X first, so elbo_scorer equals
    # the pipeline's score; a fitted search delegates to its best_estimator_; anything
    # without rate_distortion is refused by name.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X = load_digits().data[:150]
    pipe = make_pipeline(MinMaxScaler(clip=True), _vae()).fit(X)
    vae, scaled = pipe[-1], pipe[:-1].transform(X)
    assert_allclose(elbo_scorer(pipe, X), pipe.score(X))
    assert_allclose(reconstruction_scorer(pipe, X), reconstruction_scorer(vae, scaled))
    assert_allclose(rate_scorer(pipe, X), rate_scorer(vae, scaled))
    assert np.isfinite(cross_val_score(pipe, X, cv=2, scoring=elbo_scorer,
                                       error_score="raise")).all()
    search = GridSearchCV(_vae(), {"beta": [1.0]}, cv=2).fit(scaled)
    assert_allclose(elbo_scorer(search, scaled), search.best_estimator_.score(scaled))
    with pytest.raises(TypeError, match="MinMaxScaler has no rate_distortion"):
        elbo_scorer(pipe[0], X)


def test_disentanglement_scorers_leave_out_pandas_na_rows():
    # y of pandas' nullable dtype, pd.NA where a factor is unknown: those rows are left
    # out, as NaN rows are.
    pd = pytest.importorskip("pandas")
    X, factors = make_sprites(300, image_size=16, random_state=0)
    X = X.astype(np.float64)
    vae = _vae().fit(X)
    y = factors.copy()
    y[::4, 0] = np.nan
    nullable = pd.DataFrame(y).astype("Float64")
    assert nullable.isna().values.sum() == 75
    scorer = make_disentanglement_scorer(mutual_info_gap)
    assert_allclose(scorer(vae, X, nullable), scorer(vae, X, y))
