"""Conditions (``condition_features``): columns of X the encoder and decoder see, not modelled."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from sklearn_betavae import BetaTCVAE, BetaVAE, DIPVAE, FactorVAE
from sklearn_betavae._random import keyed_standard_normal, row_keys

ESTIMATORS = [BetaVAE, BetaTCVAE, DIPVAE, FactorVAE]


def _small(estimator=BetaVAE, **params):
    defaults = dict(n_components=3, hidden_layer_sizes=(16,), max_epochs=2, batch_size=16,
                    random_state=0)
    if estimator is FactorVAE:
        defaults["discriminator_hidden_layer_sizes"] = (8,)
    return estimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _with_labels(X, y):
    """Digits with their one-hot label as 10 extra columns (64 ... 73)."""
    return np.hstack([X, np.eye(10)[y]])


@pytest.fixture(scope="module")
def conditional(digits):
    X, y = digits
    Xc = _with_labels(X[:300], y[:300])
    return _small(condition_features=list(range(64, 74))).fit(Xc), Xc


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_transform_returns_codes_then_the_conditions_unchanged(digits, estimator):
    # Every model: transform gives n_components codes followed by the condition columns as they are.
    X, y = digits
    Xc = _with_labels(X[:100], y[:100])
    vae = _small(estimator, condition_features=list(range(64, 74))).fit(Xc)
    Z = vae.transform(Xc)
    assert Z.shape == (100, 13)
    assert_array_equal(Z[:, 3:], Xc[:, 64:])
    assert_array_equal(vae.condition_indices_, np.arange(64, 74))
    assert_array_equal(vae.modelled_indices_, np.arange(64))
    assert vae.encoder_.net[0].in_features == 74 and vae.decoder_.net[0].in_features == 13
    assert vae.sample(4, random_state=0, conditions=np.eye(10)[2]).shape == (4, 74)


def test_inverse_transform_puts_conditions_back_in_their_columns():
    # Conditions in the middle and in any order: inverse_transform returns X's column order.
    rng = np.random.RandomState(0)
    X = rng.rand(60, 8)
    vae = _small(condition_features=[5, 1]).fit(X)
    Z = vae.transform(X)
    assert_array_equal(Z[:, 3:], X[:, [5, 1]])
    X_back = vae.inverse_transform(Z)
    assert X_back.shape == (60, 8)
    assert_array_equal(X_back[:, [5, 1]], X[:, [5, 1]])
    assert_array_equal(vae.modelled_indices_, [0, 2, 3, 4, 6, 7])
    assert X_back[:, vae.modelled_indices_].min() >= 0  # Bernoulli means of the data columns


def test_swapping_conditions_gives_a_counterfactual(conditional):
    # The same codes decoded under other conditions: only the condition columns are
    # replaced, and the decoded data depend on them.
    vae, Xc = conditional
    Z = vae.transform(Xc[:5])
    as_three = Z.copy()
    as_three[:, 3:] = np.eye(10)[3]
    original, counterfactual = vae.inverse_transform(Z), vae.inverse_transform(as_three)
    assert_array_equal(counterfactual[:, 64:], np.tile(np.eye(10)[3], (5, 1)))
    assert np.abs(counterfactual[:, :64] - original[:, :64]).max() > 1e-3
    assert_array_equal(vae.inverse_transform(as_three[:1]), counterfactual[:1])


def test_feature_names_and_pandas_output():
    # Names are the code names then the condition names, from the DataFrame or x<index>.
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.rand(40, 5), columns=["a", "b", "c", "label", "d"])
    vae = _small(condition_features=["label", "a"]).set_output(transform="pandas").fit(X)
    assert_array_equal(vae.condition_indices_, [3, 0])
    Z = vae.transform(X)
    assert list(Z.columns) == ["betavae0", "betavae1", "betavae2", "label", "a"]
    assert list(vae.get_feature_names_out()) == list(Z.columns)
    assert_array_equal(Z[["label", "a"]].to_numpy(), X[["label", "a"]].to_numpy())
    plain = _small(condition_features=[3]).fit(X.to_numpy())
    assert list(plain.get_feature_names_out()) == ["betavae0", "betavae1", "betavae2", "x3"]


def test_sample_under_conditions(conditional):
    # One row of conditions is used for every sample; per-sample rows work too; seeded.
    vae, _ = conditional
    three = np.eye(10)[3]
    broadcast = vae.sample(6, random_state=1, conditions=three)
    assert broadcast.shape == (6, 74)
    assert_array_equal(broadcast[:, 64:], np.tile(three, (6, 1)))
    assert_array_equal(vae.sample(6, random_state=1, conditions=np.tile(three, (6, 1))), broadcast)
    assert_array_equal(vae.sample(6, random_state=1, conditions=three[None]), broadcast)
    rows = np.eye(10)[[0, 1, 2, 3, 4, 5]]
    mixed = vae.sample(6, random_state=1, conditions=rows)
    assert_array_equal(mixed[3], broadcast[3])  # same prior draw, same condition
    assert_array_equal(mixed[:, 64:], rows)


@pytest.mark.parametrize("conditions, match", [
    (None, r"fitted with 10 condition columns .*pass the conditions"),
    (np.ones(9), "conditions has 9 columns, but this BetaVAE has 10 condition columns"),
    (np.ones((3, 10)), r"conditions has 3 rows: give one row .* or n_samples=4"),
    (np.full(10, np.nan), "NaN"),
])
def test_sample_conditions_checked(conditional, conditions, match):
    # Missing conditions, the wrong width, the wrong number of rows and NaN are clear errors.
    vae, _ = conditional
    with pytest.raises(ValueError, match=match):
        vae.sample(4, conditions=conditions)


def test_conditions_refused_by_an_unconditional_model(digits):
    # sample(conditions=...) on a model fitted without conditions is a clear error.
    vae = _small().fit(digits[0][:50])
    with pytest.raises(ValueError, match="fitted without condition_features"):
        vae.sample(2, conditions=[1.0])


@pytest.mark.parametrize("condition_features, match", [
    (["nope"], r"condition_features \['nope'\] are not columns of X"),
    ([0, 0], r"condition_features lists \[0\] more than once"),
    (["b", "b"], r"lists \['b'\] more than once"),
    ([0, 1, 2, 3], "names all 4 columns of X: at least one column must be modelled"),
    ([4], r"condition_features \[4\] are not column indices of X, which has 4 features"),
    ([-1], r"\[-1\] are not column indices"),
    ([0, "b"], "must hold column indices .* or, when X is a DataFrame, column names"),
    ([True], "must hold column indices"),
])
def test_bad_condition_features(condition_features, match):
    # Unknown names, duplicates, all columns, indices out of range and mixed types are named.
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.RandomState(0).rand(20, 4), columns=list("abcd"))
    with pytest.raises(ValueError, match=match):
        _small(condition_features=condition_features).fit(X)


def test_condition_names_need_a_dataframe_and_finite_values():
    # Names with an array, and NaN or inf in a condition column, are clear errors.
    X = np.random.RandomState(0).rand(20, 4)
    with pytest.raises(ValueError, match="names columns, but X has no column names"):
        _small(condition_features=["a"]).fit(X)
    for bad, match in [(np.nan, "NaN"), (np.inf, "infinity")]:
        X_bad = X.copy()
        X_bad[3, 2] = bad
        with pytest.raises(ValueError, match=match):
            _small(condition_features=[2]).fit(X_bad)


def test_only_modelled_columns_need_the_bernoulli_range(digits):
    # Conditions outside [0, 1] neither block "bernoulli" nor make "auto" pick "gaussian";
    # a data column outside [0, 1] still does.
    X, y = digits
    Xc = np.hstack([X[:80], y[:80, None] * 10.0])
    vae = _small(condition_features=[64]).fit(Xc)
    assert vae.likelihood_ == "bernoulli"
    assert np.all(np.isfinite(vae.score_samples(Xc)))
    Xc[0, 0] = 2.0
    with pytest.raises(ValueError, match=r"needs X in \[0, 1\], but the modelled .* columns"):
        _small(likelihood="bernoulli", condition_features=[64]).fit(Xc)
    assert _small(condition_features=[64]).fit(Xc).likelihood_ == "gaussian"


def test_elbo_counts_only_the_modelled_columns(digits):
    # rate_distortion equals an independent computation over the data columns alone, with
    # the same per-row noise: the condition columns (here large) never enter log p(x | z, c).
    X, y = digits
    Xc = np.hstack([X[:40], 10.0 * y[:40, None], np.eye(10)[y[:40]]]).astype(np.float32)
    vae = _small(likelihood="gaussian", condition_features=list(range(64, 75))).fit(Xc)
    rate, distortion = vae.rate_distortion(Xc)
    module = vae.module_.eval()
    with torch.no_grad():
        x = torch.from_numpy(Xc)
        mu, logvar = module.encoder(x[:, :64], x[:, 64:])
        eps = keyed_standard_normal(row_keys(Xc, vae._score_seed), 8 * 3).reshape(40, 8, 3)
        sd = torch.exp(0.5 * logvar.double()).unsqueeze(1)
        z = mu.double().unsqueeze(1) + sd * torch.from_numpy(eps)
        decoded = module.decoder(z.float().reshape(-1, 3), x[:, 64:].repeat_interleave(8, 0))
    expected = 0.5 * ((Xc[:, :64].repeat(8, 0) - decoded.double().numpy()) ** 2).sum(1)
    expected = expected.reshape(40, 8).mean(1) + 0.5 * 64 * np.log(2 * np.pi)
    assert_allclose(distortion, expected, rtol=1e-4)
    kl = 0.5 * (mu.double() ** 2 + logvar.double().exp() - 1 - logvar.double()).sum(1)
    assert_allclose(rate, kl.numpy(), rtol=1e-5)


@pytest.mark.parametrize("image_shape", [(16, 16), (1, 16, 16)])
def test_convolutional_model_with_conditions(image_shape):
    # image_shape describes the modelled columns; the conditions join the dense layers.
    rng = np.random.RandomState(0)
    images = (rng.rand(48, 256) > 0.5).astype(np.uint8)
    X = np.hstack([images, np.eye(3, dtype=np.uint8)[rng.randint(3, size=48)]])
    vae = _small(image_shape=image_shape, max_epochs=1, condition_features=[256, 257, 258]).fit(X)
    assert vae.encoder_.dense[0].in_features == 64 + 3
    assert vae.decoder_.dense[0][0].in_features == 3 + 3
    Z = vae.transform(X)
    assert Z.shape == (48, 6) and Z.dtype == np.float64
    assert_array_equal(Z[:, 3:], X[:, 256:])
    assert vae.inverse_transform(Z).shape == (48, 259)
    with pytest.raises(ValueError, match="holds 256 values but X has 258 features"):
        _small(image_shape=image_shape, condition_features=[258]).fit(X)


@pytest.mark.parametrize("params", [
    dict(hidden_layer_sizes=(16,), batch_size=16),
    dict(image_shape=(16, 16), batch_size=8),
])
def test_conditional_row_results_are_independent_of_the_other_rows(params):
    # With conditions too, each row's outputs are bitwise the same alone, in subsets and
    # in any order.
    rng = np.random.RandomState(0)
    n_data = 256 if "image_shape" in params else 20
    X = np.hstack([rng.rand(37, n_data), rng.randint(3, size=(37, 2))]).astype(np.float32)
    vae = _small(max_epochs=1, condition_features=[n_data + 1, n_data], **params).fit(X)
    Z = np.hstack([rng.randn(37, 3), X[:, [n_data + 1, n_data]]]).astype(np.float32)
    full = (vae.transform(X), vae.score_samples(X), vae.kl_per_dim(X), vae.inverse_transform(Z))
    for size in (1, 5, 17):
        rows = rng.choice(37, size, replace=False)
        part = (vae.transform(X[rows]), vae.score_samples(X[rows]), vae.kl_per_dim(X[rows]),
                vae.inverse_transform(Z[rows]))
        for a, b in zip(part, full):
            assert_array_equal(a, b[rows])


def test_inverse_transform_needs_the_layout_of_transform(conditional):
    # Codes without their conditions are refused, naming what is expected.
    vae, Xc = conditional
    with pytest.raises(ValueError, match="expecting 3 latent components and 10 condition columns"):
        vae.inverse_transform(np.zeros((2, 3)))


def test_clone_pickle_and_grid_search_with_conditions(conditional, digits):
    # clone keeps condition_features; pickling keeps the outputs; GridSearchCV's default
    # (ELBO) scoring and a pipeline run on the conditional model as on any other.
    vae, Xc = conditional
    assert clone(vae).condition_features == list(range(64, 74))
    restored = pickle.loads(pickle.dumps(vae))
    assert_array_equal(restored.transform(Xc), vae.transform(Xc))
    assert_array_equal(restored.sample(3, random_state=0, conditions=np.eye(10)[1]),
                       vae.sample(3, random_state=0, conditions=np.eye(10)[1]))
    search = GridSearchCV(clone(vae), {"beta": [1.0, 4.0]}, cv=2).fit(Xc)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_warm_start_refuses_other_conditions():
    # The conditions shape the network: a warm start cannot change them.
    X = np.random.RandomState(0).rand(40, 6)
    vae = _small(condition_features=[5], warm_start=True).fit(X)
    vae.fit(X)
    assert vae.n_iter_ == 4
    with pytest.raises(ValueError, match=r"warm_start cannot continue .*condition_features"):
        vae.set_params(condition_features=[4]).fit(X)


def test_uint8_and_memmap_rows_with_conditions(tmp_path):
    # The data path is unchanged: uint8 rows from a memmap, conditions split on the device.
    rng = np.random.RandomState(0)
    path = tmp_path / "x.dat"
    data = np.memmap(path, dtype=np.uint8, mode="w+", shape=(100, 20))
    data[:, :18] = rng.rand(100, 18) > 0.5
    data[:, 18:] = np.eye(2, dtype=np.uint8)[rng.randint(2, size=100)]
    data.flush()
    X = np.memmap(path, dtype=np.uint8, mode="r", shape=(100, 20))
    vae = _small(condition_features=[18, 19]).fit(X)
    assert_array_equal(vae.transform(X), vae.transform(np.asarray(X)))
    assert_array_equal(vae.transform(X)[:, 3:], X[:, 18:])


def test_samples_follow_the_requested_digit(digits):
    # A model of digits conditioned on their label draws digits that a classifier trained
    # on real digits recognises as the requested label far above chance.
    X, y = digits
    Xc = _with_labels(X, y)
    vae = BetaVAE(n_components=4, max_epochs=10, condition_features=list(range(64, 74)),
                  random_state=0).fit(Xc)
    classifier = LogisticRegression(max_iter=2000).fit(X, y)
    labels = np.repeat(np.arange(10), 20)
    samples = vae.sample(200, random_state=0, conditions=np.eye(10)[labels])
    accuracy = np.mean(classifier.predict(samples[:, :64]) == labels)
    assert accuracy > 0.8
