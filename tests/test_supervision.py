"""Partial supervision (``supervision_weight``): code dimensions tied to known factors."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_betavae import BetaTCVAE, BetaVAE, DIPVAE, FactorVAE
from sklearn_betavae._base import _supervision_targets
from sklearn_betavae._losses import supervised_loss
from sklearn_betavae._net import ArrayDataset, BatchIterator, HoldoutSplit
from sklearn_betavae.metrics import make_disentanglement_scorer, mutual_info_gap

ESTIMATORS = [BetaVAE, BetaTCVAE, DIPVAE, FactorVAE]


def _small(estimator=BetaVAE, **params):
    defaults = dict(n_components=3, hidden_layer_sizes=(32,), max_epochs=2, batch_size=32,
                    random_state=0)
    if estimator is FactorVAE:
        defaults["discriminator_hidden_layer_sizes"] = (8,)
    return estimator(**{**defaults, **params})


def _two_factor_data(n_samples=600, seed=0):
    """Rows in [0, 1] driven by two factors through a rotation (no axis is privileged)."""
    rng = np.random.RandomState(seed)
    factors = rng.rand(n_samples, 2)
    mixed = (factors - 0.5) @ np.array([[1.0, 1.0], [-1.0, 1.0]])
    weights = rng.randn(2, 24) * 3
    X = 1 / (1 + np.exp(-(mixed @ weights + 0.1 * rng.randn(n_samples, 24))))
    return X, factors


def _labelled(factors, n_labelled, seed=0):
    y = np.full(factors.shape, np.nan)
    rows = np.random.RandomState(seed).permutation(len(factors))[:n_labelled]
    y[rows] = factors[rows]
    return y


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_zero_weight_ignores_y_exactly(estimator):
    # supervision_weight=0 (the default): y, even one that could not be used, changes nothing.
    X, factors = _two_factor_data(200)
    plain = _small(estimator).fit(X)
    with_y = _small(estimator).fit(X, factors)
    assert_array_equal(with_y.transform(X), plain.transform(X))
    strings = _small(estimator).fit(X, np.array(["a"] * 200))
    assert_array_equal(strings.transform(X), plain.transform(X))
    assert "train_supervised" not in plain.history_[-1]


def test_grid_search_with_a_disentanglement_scorer_is_unchanged():
    # GridSearchCV(..., scoring=make_disentanglement_scorer(...)).fit(X, factors) trains
    # without the factors and scores each held-out fold against them, as before.
    X, factors = _two_factor_data(200)
    cv = KFold(2)
    scorer = make_disentanglement_scorer(mutual_info_gap)
    search = GridSearchCV(_small(), {"beta": [1.0, 4.0]}, scoring=scorer, cv=cv).fit(X, factors)
    for i, beta in enumerate([1.0, 4.0]):
        expected = [
            mutual_info_gap(factors[test], _small(beta=beta).fit(X[train]).transform(X[test]))
            for train, test in cv.split(X)
        ]
        assert_allclose(search.cv_results_["mean_test_score"][i], np.mean(expected))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_supervision_ties_the_first_codes_to_the_factors(estimator):
    # Every model: with 5% of the rows labelled, code k follows factor k on all rows, and
    # the history records the supervised term.
    X, factors = _two_factor_data()
    vae = _small(estimator, supervision_weight=20.0, max_epochs=30, learning_rate=3e-3)
    vae.fit(X, _labelled(factors, 30))
    codes = vae.transform(X)
    for k in range(2):
        assert stats.spearmanr(codes[:, k], factors[:, k])[0] > 0.9
    supervised = vae.history_[:, "train_supervised"]
    assert np.all(np.isfinite(supervised)) and supervised[-1] < supervised[0]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_objective_adds_the_weighted_supervised_term(estimator):
    # Every model's objective is its own loss plus supervision_weight times the shared
    # supervised term, which it logs unweighted as "supervised".
    X, factors = _two_factor_data(64)
    objective = _small(estimator, supervision_weight=2.5, supervision_loss="l2").fit(
        X, _labelled(factors, 20)).net_.criterion_
    rng = np.random.RandomState(0)
    x = torch.as_tensor(X[:8], dtype=torch.float32)
    mu, logvar, z = (torch.as_tensor(rng.randn(8, 3), dtype=torch.float32) for _ in range(3))
    extra = (torch.zeros(8, 2),) if estimator is FactorVAE else ()
    inputs = (x, mu, logvar, z, torch.zeros(8, 24), *extra)
    means, targets = torch.randn(5, 3), torch.rand(5, 2)
    plain, _ = objective(*inputs, step=3, generator=torch.Generator().manual_seed(0))
    loss, logs = objective(*inputs, step=3, generator=torch.Generator().manual_seed(0),
                           supervision=(means, targets))
    term = supervised_loss(means, targets, "l2")
    assert_allclose(loss.item(), plain.item() + 2.5 * term.item(), rtol=1e-6)
    assert_allclose(logs["supervised"].item(), term.item())
    assert list(logs)[0] == "loss"


@pytest.mark.parametrize("loss", ["l2", "cov"])
def test_other_supervised_losses_train(loss):
    # "l2" ties code k to factor k like "xent"; "cov" decorrelates each code from the other
    # factors (it does not choose a sign or a scale).
    X, factors = _two_factor_data()
    vae = _small(supervision_weight=20.0, supervision_loss=loss, max_epochs=30,
                 learning_rate=3e-3).fit(X, _labelled(factors, 30))
    codes = vae.transform(X)
    rho = np.abs(stats.spearmanr(codes[:, :2], factors)[0][:2, 2:])
    if loss == "l2":
        assert rho[0, 0] > 0.9 and rho[1, 1] > 0.9
    assert rho[0, 1] < 0.3 and rho[1, 0] < 0.3


def test_every_batch_carries_labelled_rows_at_one_in_a_thousand():
    # With 2 labelled rows in 2,000, every training batch still computes the supervised term.
    X, factors = _two_factor_data(2000)
    vae = _small(supervision_weight=1.0, max_epochs=1).fit(X, _labelled(factors, 2))
    batches = vae.history_[-1, "batches"]
    assert len(batches) == 63
    assert all(np.isfinite(batch["train_supervised"]) for batch in batches)


def test_labelled_draws_come_with_replacement_from_labelled_rows_only():
    # BatchIterator: the batches still cover every row once; each brings labelled_batch_size
    # rows drawn from the labelled ones (partly labelled rows included) with their targets.
    X = np.arange(100.0).reshape(50, 2)
    targets = np.full((50, 2), np.nan, dtype=np.float32)
    targets[[3, 17, 40]] = [[0.0, 1.0], [0.5, np.nan], [1.0, 0.0]]
    generator = torch.Generator().manual_seed(0)
    it = BatchIterator(ArrayDataset(X, targets=targets), 16, shuffle=True, generator=generator,
                       labelled_batch_size=8)
    batches = list(it)
    assert len(batches) == len(it) == 4
    assert_array_equal(np.sort(np.concatenate([b.numpy()[:, 0] for b, _ in batches])), X[:, 0])
    drawn = set()
    for _, (rows, batch_targets) in batches:
        assert rows.shape == (8, 2) and batch_targets.shape == (8, 2)
        index = rows.numpy()[:, 0].astype(int) // 2
        assert_array_equal(batch_targets.numpy(), targets[index])
        drawn.update(index)
    assert drawn == {3, 17, 40}
    validation = BatchIterator(ArrayDataset(X, targets=targets), 16)
    assert all(labelled is None for _, labelled in validation)


def test_labelled_batch_size_defaults_to_batch_size():
    # The paper's pairing: as many labelled rows per batch as rows; set it to draw fewer.
    X, factors = _two_factor_data(100)
    y = _labelled(factors, 10)
    assert _small(supervision_weight=1.0, max_epochs=1).fit(X, y).net_.labelled_batch_size == 32
    vae = _small(supervision_weight=1.0, max_epochs=1, labelled_batch_size=4).fit(X, y)
    assert vae.net_.labelled_batch_size == 4
    assert _small(max_epochs=1, labelled_batch_size=4).fit(X, y).net_.labelled_batch_size == 0


def test_factors_are_rescaled_by_their_labelled_range():
    # Each factor maps its smallest known value to 0 and its largest to 1; NaN stays NaN;
    # a 1-D y is one factor.
    y = np.array([[2.0, np.nan], [4.0, -1.0], [np.nan, np.nan], [3.0, 1.0]])
    targets = _supervision_targets(y, 4, n_components=3)
    assert targets.dtype == np.float32
    assert_array_equal(targets, [[0.0, np.nan], [1.0, 0.0], [np.nan, np.nan], [0.5, 1.0]])
    assert_array_equal(_supervision_targets(y[:, 0], 4, 3), targets[:, :1])


def test_one_dimensional_y_is_one_factor():
    # fit(X, y) with a 1-D y ties code 0 to it, as y.reshape(-1, 1) would.
    X, factors = _two_factor_data(200)
    y = _labelled(factors, 40)[:, 0]
    one = _small(supervision_weight=1.0).fit(X, y)
    column = _small(supervision_weight=1.0).fit(X, y.reshape(-1, 1))
    assert_array_equal(one.transform(X), column.transform(X))


@pytest.mark.parametrize("y, match", [
    (None, r"pass them as y in fit\(X, y\)"),
    (np.zeros((60, 4)), "y has 4 factors but the model has n_components=3"),
    (np.array([["a", "b"]] * 60), "y must hold numeric factor values"),
    (np.array([[1.0, None]] * 60, dtype=object), "y must hold numeric factor values"),
    (np.full((60, 2), np.nan), "y has no labelled row"),
    (np.zeros((59, 2)), "y has 59 rows but X has 60"),
    (np.full((60, 2), np.inf), "infinity"),
    (np.ones((60, 2)), "Factor 0 of y is constant on the labelled rows"),
    (np.column_stack([np.arange(60.0), np.full(60, np.nan)]), "Factor 1 of y is never known"),
])
def test_bad_y_is_rejected_clearly(y, match):
    # With supervision, missing, too wide, non-numeric, unlabelled, mis-sized, infinite
    # and constant factors raise errors that name the problem.
    X, _ = _two_factor_data(60)
    with pytest.raises(ValueError, match=match):
        _small(supervision_weight=1.0).fit(X, y)


def test_pandas_nullable_y_is_read_with_na_as_unlabelled():
    # A DataFrame (or Series) of pandas' nullable dtypes, pd.NA for the unknown values,
    # trains as the same values with NaN; a DataFrame with a text column is refused.
    pd = pytest.importorskip("pandas")
    X, factors = _two_factor_data(200)
    y = _labelled(factors, 40)
    frame = pd.DataFrame(y, columns=["a", "b"]).astype("Float64")
    assert frame.isna().any().all() and frame.dtypes.iloc[0] == "Float64"
    expected = _small(supervision_weight=1.0).fit(X, y).transform(X)
    assert_array_equal(_small(supervision_weight=1.0).fit(X, frame).transform(X), expected)
    assert_array_equal(_small(supervision_weight=1.0).fit(X, frame["a"]).transform(X),
                       _small(supervision_weight=1.0).fit(X, y[:, 0]).transform(X))
    frame["b"] = frame["b"].astype(str)
    with pytest.raises(ValueError, match="y must hold numeric factor values.*got values of"):
        _small(supervision_weight=1.0).fit(X, frame)


def test_disentanglement_scorer_uses_the_rows_without_nan():
    # Rows of y with a NaN are left out of a disentanglement score; all-NaN is an error.
    X, factors = _two_factor_data(200)
    vae = _small().fit(X)
    y = factors.copy()
    y[::3, 1] = np.nan
    complete = ~np.isnan(y).any(axis=1)
    scorer = make_disentanglement_scorer(mutual_info_gap)
    expected = mutual_info_gap(factors[complete], vae.transform(X[complete]))
    assert_allclose(scorer(vae, X, y), expected)
    with pytest.raises(ValueError, match="Every row of y has a NaN"):
        scorer(vae, X, np.full_like(y, np.nan))


def test_partial_fit_refuses_supervision():
    # partial_fit cannot rescale factors over chunks: a clear error, the model untouched.
    X, factors = _two_factor_data(60)
    vae = _small(supervision_weight=1.0)
    with pytest.raises(ValueError, match="partial_fit does not train the supervised term"):
        vae.partial_fit(X, factors)
    assert not hasattr(vae, "net_")


def test_early_stopping_and_warm_start_with_supervision():
    # Early stopping holds out rows (its validation loss has no supervised term); a warm
    # start continues with it.
    X, factors = _two_factor_data(300)
    vae = _small(supervision_weight=1.0, early_stopping=True, warm_start=True)
    vae.fit(X, _labelled(factors, 100))
    row = vae.history_[-1]
    assert np.isfinite(row["train_supervised"]) and "valid_supervised" not in row
    assert np.isfinite(row["valid_loss"])
    vae.fit(X, _labelled(factors, 100))
    assert vae.n_iter_ == 4 and np.isfinite(vae.history_[-1, "train_supervised"])


def test_no_labelled_row_left_after_the_validation_split():
    # Labelled rows that early stopping all holds out leave nothing to supervise: a clear
    # error, and the estimator stays unfitted.
    X, factors = _two_factor_data(20)
    seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max)  # the fit's seed
    _, valid = HoldoutSplit(0.5, seed)(ArrayDataset(X))
    y = np.full_like(factors, np.nan)
    y[valid.indices] = factors[valid.indices]
    vae = _small(supervision_weight=1.0, early_stopping=True, validation_fraction=0.5)
    with pytest.raises(ValueError, match="No labelled row is left"):
        vae.fit(X, y)
    assert not hasattr(vae, "net_")


def test_supervised_conditional_model_keeps_row_independence():
    # Supervision and conditions together; transform stays row by row.
    X, factors = _two_factor_data(200)
    Xc = np.hstack([X, (factors[:, :1] > 0.5).astype(float)])
    vae = _small(supervision_weight=5.0, condition_features=[24]).fit(Xc, _labelled(factors, 50))
    Z = vae.transform(Xc)
    assert Z.shape == (200, 4)
    rows = np.array([5, 0, 77])
    assert_array_equal(vae.transform(Xc[rows]), Z[rows])
    assert np.isfinite(vae.history_[-1, "train_supervised"])
