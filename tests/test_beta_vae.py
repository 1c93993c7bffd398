"""The beta-VAE objective: ELBO, KL annealing, free bits, capacity."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from scipy import stats
from scipy.special import log_expit
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sklearn_betavae import BetaVAE
from sklearn_betavae._base import _N_SCORE_SAMPLES
from sklearn_betavae._random import keyed_standard_normal, row_keys


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:112] / 16.0


def _batch_column(vae, key):
    return [b[key] for row in vae.history_ for b in row["batches"] if key in b]


def _linear_model_elbo(vae, X):
    """ELBO of a model without hidden layers, in numpy, from its weights."""
    enc, dec = vae.encoder_.net[0], vae.decoder_.net[0]
    We, be = enc.weight.detach().double().numpy(), enc.bias.detach().double().numpy()
    Wd, bd = dec.weight.detach().double().numpy(), dec.bias.detach().double().numpy()
    d = vae.n_components
    h = X @ We.T + be
    mu, logvar = h[:, :d], h[:, d:]
    kl = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=1)
    # Each row's own noise, keyed by its values and the fit (as documented).
    keys = row_keys(X, vae._score_seed)
    eps = keyed_standard_normal(keys, _N_SCORE_SAMPLES * d).astype(np.float32).astype(float)
    log_px = []
    for e in eps.reshape(len(X), _N_SCORE_SAMPLES, d).transpose(1, 0, 2):
        out = (mu + np.exp(0.5 * logvar) * e) @ Wd.T + bd
        if vae.likelihood_ == "bernoulli":
            # x log p + (1 - x) log(1 - p), valid for x anywhere in [0, 1]
            log_px.append((X * log_expit(out) + (1 - X) * log_expit(-out)).sum(1))
        else:
            log_px.append(stats.norm.logpdf(X, loc=out, scale=1.0).sum(1))
    return np.mean(log_px, axis=0) - kl


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_equals_hand_computation(X, likelihood):
    # score_samples equals E_q[log p(x|z)] - KL computed in numpy/scipy from the weights.
    data = (X > 0.5).astype(float) if likelihood == "bernoulli" else StandardScaler().fit_transform(X)
    vae = BetaVAE(
        n_components=2, hidden_layer_sizes=(), likelihood=likelihood, max_epochs=2, random_state=0
    ).fit(data)
    assert_allclose(vae.score_samples(data), _linear_model_elbo(vae, data), rtol=1e-5)


def test_elbo_ignores_training_beta(X):
    # score_samples is the beta=1 ELBO whatever beta, annealing and free bits were.
    vae = BetaVAE(n_components=2, hidden_layer_sizes=(), beta=8.0, free_bits=1.0,
                  anneal_steps=5, max_epochs=1, random_state=0).fit(X)
    assert_allclose(vae.score_samples(X), _linear_model_elbo(vae, X), rtol=1e-5)


def test_annealing_follows_linear_schedule(X):
    # The beta used at step t is min(1, t / T) * beta, and it is the beta in the loss.
    vae = BetaVAE(n_components=3, hidden_layer_sizes=(8,), beta=4.0, anneal_steps=10,
                  batch_size=16, max_epochs=3, random_state=0).fit(X)
    betas = _batch_column(vae, "beta")
    assert len(betas) == 21 == vae.net_.n_steps_
    assert_allclose(betas, [4.0 * min(1.0, t / 10) for t in range(21)])
    loss = np.array(_batch_column(vae, "train_loss"))
    recon = np.array(_batch_column(vae, "train_reconstruction"))
    kl = np.array(_batch_column(vae, "train_kl"))
    assert_allclose(loss, recon + np.array(betas) * kl, rtol=1e-5)
    assert vae.history_[-1, "beta"] == 4.0


def test_free_bits_penalise_each_dimension_at_least_lambda(X):
    # With free bits the KL term is sum_j max(lambda, batch-mean KL_j): never below lambda.
    lam = 0.5
    vae = BetaVAE(n_components=4, hidden_layer_sizes=(8,), beta=2.0, free_bits=lam,
                  anneal_steps=0, batch_size=16, max_epochs=3, random_state=0).fit(X)
    kl_per_dim = np.array(_batch_column(vae, "train_kl_per_dim"))
    penalised = np.maximum(lam, kl_per_dim)
    assert np.all(penalised >= lam)
    assert np.any(kl_per_dim < lam)  # the clamp is active somewhere
    loss = np.array(_batch_column(vae, "train_loss"))
    recon = np.array(_batch_column(vae, "train_reconstruction"))
    assert_allclose(loss, recon + 2.0 * penalised.sum(1), rtol=1e-5)


def test_free_bits_stop_gradient_of_dimensions_below_lambda():
    # Dimensions whose batch-mean KL is below lambda get no gradient from the KL term.
    from sklearn_betavae._beta_vae import _BetaVAEObjective

    objective = _BetaVAEObjective(beta=1.0, capacity=None, capacity_steps=0,
                                  likelihood="gaussian", dataset_size=10, free_bits=0.5)
    mu = torch.tensor([[0.1, 2.0], [0.2, 1.5]], requires_grad=True)
    logvar = torch.zeros(2, 2, requires_grad=True)
    from sklearn_betavae._losses import gaussian_kl_per_dim

    objective.kl_term(gaussian_kl_per_dim(mu, logvar)).backward()
    assert torch.all(mu.grad[:, 0] == 0)  # KL_0 = 0.0125 < 0.5
    assert_allclose(mu.grad[:, 1].numpy(), mu[:, 1].detach().numpy() / 2)  # d/dmu mean(mu^2/2)


def test_capacity_schedule_and_objective(X):
    # C(t) rises linearly to `capacity` over capacity_steps; loss = recon + beta * |KL - C(t)|.
    vae = BetaVAE(n_components=3, hidden_layer_sizes=(8,), beta=10.0, capacity=5.0,
                  capacity_steps=8, anneal_steps=0, batch_size=16, max_epochs=2, random_state=0).fit(X)
    capacity = np.array(_batch_column(vae, "train_capacity"))
    assert_allclose(capacity, [5.0 * min(1.0, t / 8) for t in range(14)])
    loss = np.array(_batch_column(vae, "train_loss"))
    recon = np.array(_batch_column(vae, "train_reconstruction"))
    kl = np.array(_batch_column(vae, "train_kl"))
    assert_allclose(loss, recon + 10.0 * np.abs(kl - capacity), rtol=1e-5, atol=1e-4)


def test_larger_beta_lowers_the_rate(X):
    # The rate-distortion trade-off: a larger beta gives a lower KL and a higher distortion.
    rates, distortions = [], []
    for beta in (0.5, 8.0):
        vae = BetaVAE(n_components=4, hidden_layer_sizes=(32,), beta=beta, max_epochs=10,
                      random_state=0).fit(X)
        rate, distortion = vae.rate_distortion(X)
        rates.append(rate.mean())
        distortions.append(distortion.mean())
    assert rates[0] > rates[1]
    assert distortions[0] < distortions[1]


def test_anneal_steps_as_a_fraction_of_the_training(X):
    # A float anneal_steps is that fraction of the max_epochs epochs of steps: here 0.5 of
    # 3 epochs of 7 batches, a ramp over round(10.5) = 10 steps.
    vae = BetaVAE(n_components=3, hidden_layer_sizes=(8,), beta=4.0, anneal_steps=0.5,
                  batch_size=16, max_epochs=3, random_state=0).fit(X)
    assert vae.net_.criterion_.anneal_steps == 10
    betas = _batch_column(vae, "beta")
    assert_allclose(betas, [4.0 * min(1.0, t / 10) for t in range(21)])
    with pytest.raises(ValueError, match="anneal_steps"):
        BetaVAE(anneal_steps=1.5).fit(X)
