"""The scikit-learn contract shared by every VAE (``_base.py``), shown on BetaVAE."""

import io
import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_allclose, assert_array_equal
from skorch.callbacks import Callback
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_betavae import BetaVAE
from sklearn_betavae.metrics import reconstruction_scorer


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _small(**params):
    defaults = dict(n_components=3, hidden_layer_sizes=(16,), max_epochs=2, random_state=0)
    return BetaVAE(**{**defaults, **params})


@pytest.fixture(scope="module")
def fitted(digits):
    return _small().fit(digits[0][:300])


def test_pipeline_features_beat_chance(digits):
    # scaler -> BetaVAE -> logistic regression classifies digits far above chance (0.1).
    X, y = digits
    pipe = make_pipeline(
        StandardScaler(),
        BetaVAE(n_components=8, max_epochs=15, random_state=0),
        LogisticRegression(max_iter=1000),
    )
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.6


def test_grid_search_default_scoring_uses_elbo(digits):
    # Without `scoring`, GridSearchCV ranks by the held-out mean ELBO (estimator.score).
    X = digits[0][:300]
    grid = {"beta": [0.5, 4.0], "anneal_steps": [0, 10], "free_bits": [0.0, 0.1]}
    search = GridSearchCV(_small(), grid, cv=2).fit(X)
    assert len(search.cv_results_["params"]) == 8
    best = search.best_estimator_
    assert_allclose(search.score(X), best.score(X))
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_grid_search_reconstruction_scorer(digits):
    # A reconstruction scorer selects a different criterion: lower beta reconstructs better.
    X = digits[0][:400]
    search = GridSearchCV(
        _small(max_epochs=10, learning_rate=1e-2), {"beta": [0.1, 50.0]}, scoring=reconstruction_scorer, cv=2
    ).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] > scores[1]
    assert search.best_params_ == {"beta": 0.1}


def _torch_threads_scorer(estimator, X, y=None):
    return float(torch.get_num_threads())


def test_grid_search_two_jobs_no_oversubscription(digits):
    # n_jobs=2 finishes, and each worker's torch runs on at most cpu_count // 2 threads.
    X = digits[0][:200]
    search = GridSearchCV(
        _small(), {"beta": [1.0, 2.0]}, cv=2, n_jobs=2, scoring=_torch_threads_scorer
    ).fit(X)
    threads = search.cv_results_["mean_test_score"]
    assert np.all(threads <= max(1, joblib.cpu_count() // 2))


def test_clone_is_unfitted_with_same_params(fitted):
    # clone copies the parameters and none of the fitted state.
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "net_")


@pytest.mark.parametrize("dump, load", [
    (pickle.dumps, pickle.loads),
    (
        lambda est: (joblib.dump(est, buf := io.BytesIO()), buf.getvalue())[1],
        lambda data: joblib.load(io.BytesIO(data)),
    ),
])
def test_pickle_and_joblib_round_trip(fitted, digits, dump, load):
    # A pickled or joblib-dumped model gives identical outputs after loading.
    X = digits[0][:50]
    restored = load(dump(fitted))
    assert_array_equal(restored.transform(X), fitted.transform(X))
    assert_array_equal(restored.score_samples(X), fitted.score_samples(X))
    assert_array_equal(restored.sample(5, random_state=1), fitted.sample(5, random_state=1))
    assert restored.history_[:, "train_loss"] == fitted.history_[:, "train_loss"]


def test_pickle_stores_the_weights_once(digits):
    # The module and its Adam state (two moments per weight) are the bulk of a
    # pickle: about 3 copies of the weights, not 4 (the module given to skorch is
    # the same object as module_ and must not be pickled twice).
    fitted = BetaVAE(hidden_layer_sizes=(256, 256), max_epochs=1).fit(digits[0][:64])
    weights = sum(p.numel() * p.element_size() for p in fitted.net_.module_.parameters())
    size = len(pickle.dumps(fitted))
    assert 3 * weights < size < 3.5 * weights
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.net_.module is restored.net_.module_
    restored.partial_fit(digits[0][:64])  # and training continues on the restored model
    assert len(restored.history_) == len(fitted.history_) + 1


def test_model_pickled_for_gpu_loads_on_cpu(fitted, digits):
    # A model whose net says device="cuda" unpickles on a machine without CUDA, on the CPU.
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    X = digits[0][:20]
    expected = fitted.transform(X)
    fitted.net_.device = "cuda"
    try:
        data = pickle.dumps(fitted)
    finally:
        fitted.net_.device = "cpu"
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        restored = pickle.loads(data)
    assert str(restored.net_.device) == "cpu"
    assert_array_equal(restored.transform(X), expected)


def test_same_seed_same_result_and_global_rng_untouched(digits):
    # Same random_state -> identical transform; global torch and numpy RNG states untouched.
    X = digits[0][:200]
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    first = _small(random_state=42).fit_transform(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    second = _small(random_state=42).fit_transform(X)
    other = _small(random_state=43).fit_transform(X)
    assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_fit_transform_equals_fit_then_transform(digits):
    # fit_transform is fit followed by transform, and transform is deterministic.
    X = digits[0][:200]
    vae = _small()
    Z = vae.fit_transform(X)
    assert_array_equal(Z, vae.transform(X))
    assert_array_equal(vae.transform(X), vae.transform(X))


@pytest.mark.parametrize("dtype, out", [
    (np.float64, np.float64), (np.float32, np.float32), (np.uint8, np.float64), (bool, np.float64),
])
def test_dtypes(digits, dtype, out):
    # float32 in -> float32 out, float64 in -> float64; uint8/bool accepted; scores float64.
    X = (digits[0][:100] > 0.5).astype(dtype)
    vae = _small().fit(X)
    assert vae.transform(X).dtype == out
    assert vae.inverse_transform(vae.transform(X)).dtype == out
    assert vae.score_samples(X).dtype == np.float64
    assert vae.likelihood_ == "bernoulli"


def test_uint8_training_makes_no_float_copy_of_X():
    # Fitting on a large uint8 X never allocates a float copy of it (numpy allocations traced).
    import tracemalloc

    rng = np.random.RandomState(0)
    X = (rng.rand(20000, 256) > 0.5).astype(np.uint8)  # 5 MB; a float64 copy is 40 MB
    vae = _small(max_epochs=1, batch_size=256)
    tracemalloc.start()
    vae.fit(X)
    vae.transform(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.5 * X.size * 4  # less than half of a float32 copy


def test_memmap_input_trains(tmp_path):
    # A read-only numpy.memmap trains and transforms batch by batch.
    rng = np.random.RandomState(0)
    path = tmp_path / "x.dat"
    data = np.memmap(path, dtype=np.uint8, mode="w+", shape=(500, 64))
    data[:] = rng.rand(500, 64) > 0.5
    data.flush()
    X = np.memmap(path, dtype=np.uint8, mode="r", shape=(500, 64))
    vae = _small().fit(X)
    assert_array_equal(vae.transform(X), vae.transform(np.asarray(X)))


def test_pandas_input_and_output(digits):
    # DataFrames keep feature_names_in_; set_output(transform="pandas") names the components.
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(digits[0][:100], columns=[f"px{i}" for i in range(64)])
    vae = _small().set_output(transform="pandas").fit(X)
    assert list(vae.feature_names_in_) == list(X.columns)
    Z = vae.transform(X)
    assert list(Z.columns) == ["betavae0", "betavae1", "betavae2"]
    assert list(vae.get_feature_names_out()) == list(Z.columns)


def test_sample_shape_range_and_seed(fitted):
    # sample() decodes prior draws: Bernoulli means in [0, 1], reproducible by seed.
    S = fitted.sample(7, random_state=3)
    assert S.shape == (7, 64)
    assert S.min() >= 0 and S.max() <= 1
    assert_array_equal(S, fitted.sample(7, random_state=3))
    assert not np.allclose(S, fitted.sample(7, random_state=4))
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        fitted.sample(0)


def test_score_is_mean_of_score_samples(fitted, digits):
    # score is the mean per-sample ELBO, and ELBO = -(rate + distortion).
    X = digits[0][:60]
    rate, distortion = fitted.rate_distortion(X)
    assert_allclose(fitted.score_samples(X), -(rate + distortion))
    assert_allclose(fitted.score(X), np.mean(fitted.score_samples(X)))
    assert np.all(rate >= 0)


@pytest.mark.parametrize("bad, error, match", [
    (np.full((5, 64), np.nan), ValueError, "NaN"),
    (np.full((5, 64), np.inf), ValueError, "infinity"),
    (sp.csr_matrix(np.ones((5, 64))), TypeError, "[Ss]parse"),
    (np.empty((0, 64)), ValueError, "0 sample"),
    (np.ones(64), ValueError, "Expected 2D array"),
])
def test_bad_input_is_rejected_clearly(bad, error, match):
    # NaN, inf, sparse, empty and 1-D inputs raise errors that name the problem.
    with pytest.raises(error, match=match):
        _small().fit(bad)


def test_wrong_number_of_features_at_transform(fitted):
    # transform / score / inverse_transform name the expected number of features.
    with pytest.raises(ValueError, match="X has 10 features, but BetaVAE is expecting 64"):
        fitted.transform(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="X has 10 features, but BetaVAE is expecting 64"):
        fitted.score_samples(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="expecting 3 latent components"):
        fitted.inverse_transform(np.zeros((2, 10)))


def test_bernoulli_out_of_range_rejected(fitted):
    # Bernoulli likelihood with data outside [0, 1] is a clear ValueError, at fit and score.
    X = np.random.RandomState(0).randn(20, 64)
    with pytest.raises(ValueError, match=r"likelihood='bernoulli' needs X in \[0, 1\]"):
        _small(likelihood="bernoulli").fit(X)
    with pytest.raises(ValueError, match=r"needs X in \[0, 1\]"):
        fitted.score(X)


def test_auto_likelihood_picks_by_data(digits):
    # likelihood="auto" is Bernoulli for [0, 1] data and Gaussian otherwise.
    assert _small().fit(digits[0][:50]).likelihood_ == "bernoulli"
    X = StandardScaler().fit_transform(digits[0][:50])
    assert _small().fit(X).likelihood_ == "gaussian"


def test_invalid_parameters_and_device():
    # Parameter validation and an unavailable CUDA device fail with clear messages.
    X = np.random.RandomState(0).rand(20, 64)
    with pytest.raises(ValueError, match="n_components"):
        _small(n_components=0).fit(X)
    with pytest.raises(ValueError, match="likelihood"):
        _small(likelihood="poisson").fit(X)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            _small(device="cuda").fit(X)


def test_image_shape_checked():
    # image_shape must hold n_features values with sides divisible by 16.
    X = np.random.RandomState(0).rand(10, 256)
    with pytest.raises(ValueError, match="holds 1024 values but X has 256"):
        _small(image_shape=(32, 32)).fit(X)
    with pytest.raises(ValueError, match="multiples of 16"):
        _small(image_shape=(8, 32)).fit(X)


@pytest.mark.parametrize("image_shape", [(16, 16), (1, 16, 16)])
def test_convolutional_model(image_shape):
    # With image_shape the conv encoder/decoder of the literature is used on flat rows.
    X = (np.random.RandomState(0).rand(64, 256) > 0.5).astype(np.uint8)
    vae = _small(image_shape=image_shape, max_epochs=1).fit(X)
    assert isinstance(vae.encoder_.conv[0], torch.nn.Conv2d)
    assert [m.out_channels for m in vae.encoder_.conv if isinstance(m, torch.nn.Conv2d)] == [
        32, 32, 64, 64,
    ]
    assert vae.transform(X).shape == (64, 3)
    assert vae.inverse_transform(vae.transform(X)).shape == (64, 256)


def test_diverging_fit_stops_with_clear_message_and_usable_model(digits):
    # A loss that becomes non-finite stops the fit with a clear message; weights stay finite.
    X = StandardScaler().fit_transform(digits[0][:200]) * 1e18
    vae = _small(learning_rate=1e6, max_epochs=50)
    with pytest.raises(ValueError, match="training diverged"):
        vae.fit(X)
    assert all(torch.isfinite(p).all() for p in vae.module_.parameters())


class _InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_fit_leaves_usable_model(digits):
    # Ctrl-C during training returns a usable model with the epochs run so far.
    X = digits[0][:200]
    vae = _small(max_epochs=10, callbacks=[_InterruptAt(2)]).fit(X)
    assert vae.n_iter_ == 2
    assert np.all(np.isfinite(vae.transform(X)))


class _CountEpochs(Callback):
    def __init__(self):
        self.count = 0

    def on_epoch_end(self, net, **kwargs):
        self.count += 1


def test_user_callbacks_run_on_copies(digits):
    # User skorch callbacks run during fit but the objects given are never mutated.
    counter = _CountEpochs()
    vae = _small(max_epochs=3, callbacks=[counter]).fit(digits[0][:100])
    assert counter.count == 0
    ran = [cb for _, cb in vae.net_.callbacks_ if isinstance(cb, _CountEpochs)]
    assert ran[0].count == 3


def test_verbose_prints_progress(digits, capsys):
    # verbose=1 prints a per-epoch table; verbose=0 prints nothing.
    _small(verbose=0).fit(digits[0][:100])
    assert capsys.readouterr().out == ""
    _small(verbose=1).fit(digits[0][:100])
    out = capsys.readouterr().out
    assert "train_loss" in out and "train_kl" in out


def test_early_stopping_holds_out_validation_data(digits):
    # early_stopping records validation terms and stops after n_iter_no_change epochs.
    vae = _small(max_epochs=30, early_stopping=True, n_iter_no_change=2, tol=1e9)
    vae.fit(digits[0][:200])
    assert vae.n_iter_ == 3
    assert "valid_kl" in vae.history_[-1] and "valid_loss" in vae.history_[-1]
    assert vae.net_.criterion_.dataset_size == 180


def test_warm_start_and_partial_fit_continue_training(digits):
    # warm_start fit and partial_fit continue from the current weights and history.
    X = digits[0][:200]
    vae = _small(max_epochs=2, warm_start=True).fit(X)
    weights = [p.detach().clone() for p in vae.module_.parameters()]
    vae.fit(X)
    assert vae.n_iter_ == 4
    assert vae.net_.n_steps_ == 4 * 4
    assert any(not torch.equal(a, b) for a, b in zip(weights, vae.module_.parameters()))

    incremental = _small()
    incremental.partial_fit(X)
    incremental.partial_fit(X)
    assert incremental.n_iter_ == 2


def test_history_records_terms_per_epoch(fitted):
    # history_ has, per epoch, loss, reconstruction, rate, per-dimension KL, beta and the KL split.
    row = fitted.history_[-1]
    for key in ["train_loss", "train_reconstruction", "train_kl", "train_mi", "train_tc",
                "train_dwkl", "beta"]:
        assert np.isfinite(row[key]), key
    assert len(row["train_kl_per_dim"]) == 3
    assert_allclose(sum(row["train_kl_per_dim"]), row["train_kl"], rtol=1e-5)
    assert fitted.n_iter_ == len(fitted.history_) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_matches_cpu_shapes_and_pickles(digits):
    # On a GPU the model trains, transforms and round-trips through pickle.
    X = digits[0][:200]
    vae = _small(device="cuda").fit(X)
    assert next(vae.module_.parameters()).is_cuda
    Z = vae.transform(X)
    assert Z.shape == (200, 3) and np.all(np.isfinite(Z))
    assert_allclose(pickle.loads(pickle.dumps(vae)).transform(X), Z)


def test_warm_start_applies_changed_hyperparameters():
    # set_params between warm-started fits changes the objective of the continued training.
    X = load_digits().data[:64] / 16.0
    vae = BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=1, warm_start=True,
                  random_state=0).fit(X)
    assert vae.history_[-1, "beta"] == 1.0
    vae.set_params(beta=3.0).fit(X)
    assert len(vae.history_) == 2
    assert vae.history_[-1, "beta"] == 3.0
