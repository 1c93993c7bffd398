"""The beta-TCVAE objective: MI + TC + dimension-wise KL, TC annealing, estimators."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_betavae import BetaTCVAE
from sklearn_betavae._beta_vae import _BetaVAEObjective
from sklearn_betavae._losses import kl_decomposition


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:112] / 16.0


def _small(**params):
    defaults = dict(n_components=3, hidden_layer_sizes=(8,), batch_size=16, max_epochs=2,
                    random_state=0)
    return BetaTCVAE(**{**defaults, **params})


def _batch_column(vae, key):
    return [b[key] for row in vae.history_ for b in row["batches"] if key in b]


def _gaussian_batch(batch_size=8, n_components=3, n_features=5, seed=0):
    """A fixed minibatch (float64) for evaluating objectives directly."""
    rng = np.random.RandomState(seed)
    mu = rng.normal(size=(batch_size, n_components))
    logvar = rng.normal(scale=0.5, size=(batch_size, n_components)) - 0.5
    x = rng.normal(size=(batch_size, n_features))
    decoded = rng.normal(size=(batch_size, n_features))
    return [torch.from_numpy(a) for a in (x, mu, logvar, decoded)]


def _objective(estimator, dataset_size=100):
    return estimator._objective("gaussian", dataset_size, n_modelled=5)


@pytest.mark.parametrize("tc_estimator", ["mss", "mws"])
def test_unit_weights_telescope_to_log_ratio(tc_estimator):
    # With alpha = beta = gamma = 1, penalty = mean_i [log q(z_i|x_i) - log p(z_i)], per scipy.
    x, mu, logvar, decoded = _gaussian_batch()
    objective = _objective(BetaTCVAE(alpha=1.0, beta=1.0, gamma=1.0, tc_estimator=tc_estimator,
                                     anneal_steps=0))
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, dtype=mu.dtype,
                                                   generator=torch.Generator().manual_seed(1))
    loss, logs = objective(x, mu, logvar, z, decoded, step=0)
    z_, mu_, sd_ = z.numpy(), mu.numpy(), np.exp(0.5 * logvar.numpy())
    log_ratio = (stats.norm.logpdf(z_, mu_, sd_) - stats.norm.logpdf(z_)).sum(1)
    assert_allclose(loss.item() - logs["reconstruction"].item(), log_ratio.mean(), rtol=1e-10)
    # The plain ELBO objective differs only by the analytic KL in place of that estimate.
    elbo_objective = _BetaVAEObjective(beta=1.0, capacity=None, capacity_steps=0,
                                       likelihood="gaussian", dataset_size=100)
    elbo_loss, _ = elbo_objective(x, mu, logvar, z, decoded, step=0)
    assert_allclose(elbo_loss.item() - logs["kl"].item(), logs["reconstruction"].item())


@pytest.mark.parametrize("tc_estimator", ["mss", "mws"])
def test_unit_weights_equal_elbo_objective_in_expectation(tc_estimator):
    # Averaged over many z ~ q(z|x), the alpha=beta=gamma=1 loss approaches the beta=1 ELBO loss.
    x, mu, logvar, decoded = _gaussian_batch()
    objective = _objective(BetaTCVAE(alpha=1.0, beta=1.0, gamma=1.0, tc_estimator=tc_estimator,
                                     anneal_steps=0))
    elbo_objective = _BetaVAEObjective(beta=1.0, capacity=None, capacity_steps=0,
                                       likelihood="gaussian", dataset_size=100)
    # 20000 draws of the whole minibatch, evaluated at once with vmap (one set of
    # random stratified partners for all draws: randomness="same").
    eps = torch.randn((20000, *mu.shape), dtype=mu.dtype, generator=torch.Generator().manual_seed(0))
    loss = torch.func.vmap(
        lambda z: objective(x, mu, logvar, z, decoded, step=0)[0], randomness="same"
    )
    losses = loss(mu + torch.exp(0.5 * logvar) * eps).numpy()
    elbo_loss = elbo_objective(x, mu, logvar, mu, decoded, step=0)[0].item()
    standard_error = np.std(losses) / np.sqrt(len(losses))
    assert standard_error < 0.01
    assert abs(np.mean(losses) - elbo_loss) < 4 * standard_error


def test_loss_weights_terms_and_anneals_tc_weight(X):
    # Per step t: loss = recon + alpha MI + min(1, t/T) beta TC + gamma dwKL; beta logged.
    vae = _small(alpha=0.5, beta=4.0, gamma=2.0, anneal_steps=10, max_epochs=3).fit(X)
    betas = _batch_column(vae, "beta")
    assert len(betas) == 21 == vae.net_.n_steps_
    assert_allclose(betas, [4.0 * min(1.0, t / 10) for t in range(21)])
    terms = {k: np.array(_batch_column(vae, f"train_{k}"))
             for k in ("loss", "reconstruction", "tcvae_mi", "tcvae_tc", "tcvae_dwkl")}
    expected = (terms["reconstruction"] + 0.5 * terms["tcvae_mi"]
                + np.array(betas) * terms["tcvae_tc"] + 2.0 * terms["tcvae_dwkl"])
    assert_allclose(terms["loss"], expected, rtol=1e-5, atol=1e-5)
    assert vae.history_[-1, "beta"] == 4.0


@pytest.mark.parametrize("tc_estimator", ["mss", "mws"])
def test_both_estimators_fit_and_history_has_terms(X, tc_estimator):
    # Each estimator trains; history holds the objective's terms and the common diagnostic.
    vae = _small(tc_estimator=tc_estimator).fit(X)
    assert vae.n_iter_ == len(vae.history_) == 2
    for row in vae.history_:
        for key in ("train_loss", "train_reconstruction", "train_kl", "train_tcvae_mi",
                    "train_tcvae_tc", "train_tcvae_dwkl", "train_mi", "train_tc",
                    "train_dwkl", "beta"):
            assert np.isfinite(row[key]), key
    assert np.all(np.isfinite(vae.transform(X)))


def test_objective_terms_follow_the_chosen_estimator():
    # The logged terms are kl_decomposition's with tc_estimator, and the two estimators differ.
    x, mu, logvar, decoded = _gaussian_batch()
    z = mu + torch.exp(0.5 * logvar)
    logged = {}
    for estimator in ("mss", "mws"):
        objective = _objective(BetaTCVAE(tc_estimator=estimator))
        # The same generator state draws the same random stratified partners.
        _, logs = objective(x, mu, logvar, z, decoded, 0, generator=torch.Generator().manual_seed(3))
        parts = kl_decomposition(z, mu, logvar, 100, estimator,
                                 generator=torch.Generator().manual_seed(3))
        for key in ("mi", "tc", "dwkl"):
            assert_allclose(logs[f"tcvae_{key}"].item(), parts[key].mean().item())
        logged[estimator] = logs["tcvae_tc"].item()
    assert logged["mss"] != pytest.approx(logged["mws"])


def test_first_batch_terms_match_the_mss_diagnostic(X):
    # With tc_estimator="mss" the objective's terms on an epoch's first batch are the diagnostic,
    # up to the random stratified partners each estimate draws; later batches have no diagnostic.
    vae = _small(tc_estimator="mss").fit(X)
    for row in vae.history_:
        first = row["batches"][0]
        for key in ("mi", "tc", "dwkl"):
            assert_allclose(first[f"train_tcvae_{key}"], first[f"train_{key}"], rtol=0.05,
                            atol=0.05)
        assert first["train_tcvae_mi"] + first["train_tcvae_tc"] + first[
            "train_tcvae_dwkl"] == pytest.approx(first["train_mi"] + first["train_tc"]
                                                 + first["train_dwkl"], rel=1e-5)
        assert "train_mi" not in row["batches"][1]


def test_invalid_parameters_are_rejected(X):
    # Unknown estimators and negative weights fail validation; free bits are refused clearly.
    with pytest.raises(ValueError, match="tc_estimator"):
        _small(tc_estimator="exact").fit(X)
    with pytest.raises(ValueError, match="gamma"):
        _small(gamma=-1.0).fit(X)
    with pytest.raises(ValueError, match="does not support free bits"):
        _small(free_bits=0.5).fit(X)


def test_clone_and_pickle_round_trip(X):
    # clone keeps the parameters and no fitted state; pickling keeps the exact transform.
    vae = _small(beta=3.0, tc_estimator="mws").fit(X)
    copy = clone(vae)
    assert copy.get_params() == vae.get_params()
    assert not hasattr(copy, "net_")
    restored = pickle.loads(pickle.dumps(vae))
    assert_array_equal(restored.transform(X), vae.transform(X))
    assert_array_equal(copy.fit(X).transform(X), vae.transform(X))


def test_grid_search_over_beta(X):
    # GridSearchCV fits every beta and ranks them by the held-out ELBO.
    search = GridSearchCV(_small(), {"beta": [1.0, 8.0]}, cv=2).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.all(np.isfinite(scores))
    assert search.best_params_["beta"] == [1.0, 8.0][int(np.argmax(scores))]
    assert search.best_estimator_.beta == search.best_params_["beta"]


def test_validation_batches_use_the_validation_set_size(monkeypatch):
    # With early stopping, a validation batch is a sample of the validation rows: the TC
    # estimators (the objective's and the per-epoch diagnostic) weight it by their number,
    # not by the training set's, which overstated log q(z) there.
    from sklearn_betavae import _beta_tcvae, _net

    calls = []

    def recording(original):
        def kl_decomposition(z, mu, logvar, dataset_size, *args, **kwargs):
            calls.append((len(z), dataset_size))
            return original(z, mu, logvar, dataset_size, *args, **kwargs)
        return kl_decomposition

    for module in (_beta_tcvae, _net):
        monkeypatch.setattr(module, "kl_decomposition", recording(module.kl_decomposition))
    X = load_digits().data[:200] / 16.0
    vae = BetaTCVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=2, batch_size=64,
                    early_stopping=True, validation_fraction=0.1, random_state=0).fit(X)
    assert vae.n_samples_seen_ == 180
    assert {n for b, n in calls if b == 20} == {20}  # the one validation batch: N = 20
    assert {n for b, n in calls if b != 20} == {180}  # training batches: N = 180
    assert np.isfinite(vae.history_[:, "valid_tcvae_tc"]).all()
