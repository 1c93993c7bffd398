"""The DIP-VAE objective: ELBO plus the covariance penalty of the aggregate posterior."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits

from sklearn_betavae import DIPVAE


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:112] / 16.0


def _small(**params):
    defaults = dict(n_components=3, hidden_layer_sizes=(8,), batch_size=16, max_epochs=2,
                    random_state=0)
    return DIPVAE(**{**defaults, **params})


def _batch_column(vae, key):
    return [b[key] for row in vae.history_ for b in row["batches"] if key in b]


def _numpy_dip_loss(x, mu, logvar, decoded, dip_type, lambda_od, lambda_d):
    """Gaussian-likelihood DIP-VAE loss of one minibatch, by hand in numpy."""
    recon = np.mean(0.5 * np.sum((x - decoded) ** 2 + np.log(2 * np.pi), axis=1))
    kl = np.mean(0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=1))
    cov = np.cov(mu, rowvar=False, bias=True)
    if dip_type == "ii":
        cov = cov + np.diag(np.exp(logvar).mean(0))
    d = cov.shape[0]
    off = sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    diag = sum((cov[i, i] - 1) ** 2 for i in range(d))
    return recon + kl + lambda_od * off + lambda_d * diag, lambda_od * off + lambda_d * diag


@pytest.mark.parametrize(
    "dip_type, lambda_od, lambda_d, expected_lambda_d",
    [("i", 3.0, None, 30.0), ("ii", 3.0, None, 3.0), ("i", 3.0, 0.5, 0.5), ("ii", 0.0, 2.0, 2.0)],
)
def test_objective_matches_numpy(dip_type, lambda_od, lambda_d, expected_lambda_d):
    # Loss = recon + KL + lambda_od sum_{i!=j} C_ij^2 + lambda_d sum (C_ii - 1)^2, with
    # C = np.cov(mu, bias=True) (+ mean diag exp(logvar) for "ii") and the default lambda_d.
    rng = np.random.RandomState(0)
    mu = rng.normal(size=(16, 4)) @ rng.normal(size=(4, 4))  # correlated means
    logvar = rng.normal(scale=0.5, size=(16, 4))
    x, decoded = rng.normal(size=(16, 6)), rng.normal(size=(16, 6))
    vae = DIPVAE(lambda_od=lambda_od, lambda_d=lambda_d, dip_type=dip_type, anneal_steps=0)
    objective = vae._objective("gaussian", 100, n_modelled=6)
    t = [torch.from_numpy(a) for a in (x, mu, logvar, decoded)]
    loss, logs = objective(t[0], t[1], t[2], t[1], t[3], step=0)
    expected, penalty = _numpy_dip_loss(x, mu, logvar, decoded, dip_type, lambda_od,
                                        expected_lambda_d)
    assert_allclose(loss.item(), expected, rtol=1e-10)
    assert_allclose(logs["dip_penalty"].item(), penalty, rtol=1e-10)


def test_penalty_vanishes_for_identity_covariance():
    # Posterior means with identity covariance ("i") give a zero penalty, whatever the weights.
    rng = np.random.RandomState(0)
    mu = rng.normal(size=(64, 3))
    mu = (mu - mu.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(mu.T, bias=True))).T
    objective = DIPVAE(lambda_od=7.0, dip_type="i")._objective("gaussian", 64, n_modelled=3)
    t = torch.from_numpy(mu)
    _, logs = objective(t, t, torch.zeros_like(t), t, t, step=0)
    assert abs(logs["dip_penalty"].item()) < 1e-12


def test_kl_annealing_and_free_bits_in_the_loss(X):
    # Per step t: loss = recon + min(1, t/T) sum_j max(lambda, KL_j) + DIP penalty.
    lam = 0.3
    vae = _small(anneal_steps=10, free_bits=lam, max_epochs=3).fit(X)
    betas = np.array(_batch_column(vae, "beta"))
    assert len(betas) == 21 == vae.net_.n_steps_
    assert_allclose(betas, [min(1.0, t / 10) for t in range(21)])
    kl_per_dim = np.array(_batch_column(vae, "train_kl_per_dim"))
    assert np.any(kl_per_dim < lam)  # the clamp is active somewhere
    loss = np.array(_batch_column(vae, "train_loss"))
    recon = np.array(_batch_column(vae, "train_reconstruction"))
    dip = np.array(_batch_column(vae, "train_dip_penalty"))
    expected = recon + betas * np.maximum(lam, kl_per_dim).sum(1) + dip
    assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)
    assert vae.history_[-1, "beta"] == 1.0


@pytest.mark.parametrize("dip_type", ["i", "ii"])
def test_history_logs_dip_penalty_per_epoch(X, dip_type):
    # Every epoch records a finite, non-negative DIP penalty next to the common terms.
    vae = _small(dip_type=dip_type).fit(X)
    penalties = vae.history_[:, "train_dip_penalty"]
    assert len(penalties) == vae.n_iter_ == 2
    assert all(np.isfinite(p) and p >= 0 for p in penalties)
    assert all(np.isfinite(vae.history_[:, key]).all() for key in ("train_kl", "train_tc"))


def test_clone_and_pickle_round_trip(X):
    # clone keeps the parameters and no fitted state; pickling keeps the exact transform.
    vae = _small(dip_type="i", lambda_od=5.0).fit(X)
    copy = clone(vae)
    assert copy.get_params() == vae.get_params()
    assert not hasattr(copy, "net_")
    restored = pickle.loads(pickle.dumps(vae))
    assert_array_equal(restored.transform(X), vae.transform(X))
    assert_array_equal(copy.fit(X).transform(X), vae.transform(X))


def test_invalid_parameters_are_rejected(X):
    # Unknown DIP types and negative weights fail validation with the parameter's name.
    with pytest.raises(ValueError, match="dip_type"):
        _small(dip_type="iii").fit(X)
    with pytest.raises(ValueError, match="lambda_d"):
        _small(lambda_d=-1.0).fit(X)
    with pytest.raises(ValueError, match="lambda_od"):
        _small(lambda_od=-1.0).fit(X)
