"""FactorVAE: the two-player training step, its logs and the estimator contract."""

import copy
import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_betavae import FactorVAE
from sklearn_betavae._losses import discriminator_accuracy, discriminator_tc, permute_dims


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:96] / 16.0


def _small(**params):
    defaults = dict(
        n_components=2,
        hidden_layer_sizes=(8,),
        discriminator_hidden_layer_sizes=(8,),
        max_epochs=2,
        batch_size=32,
        random_state=0,
    )
    return FactorVAE(**{**defaults, **params})


@pytest.fixture(scope="module")
def fitted(X):
    return _small().fit(X)


def _batch_column(vae, key):
    return [b[key] for row in vae.history_ for b in row["batches"] if key in b]


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _grads(module):
    return [None if p.grad is None else p.grad.clone() for p in module.parameters()]


def _assert_same(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)


def _fresh_net(vae, seed=0):
    """A copy of a fitted net, ready for hand-made steps (new history row, seeded noise)."""
    net = copy.deepcopy(vae.net_)
    net.seed_generators(seed)
    net.history.new_epoch()
    net.history.new_batch()
    return net


def test_fit_under_anomaly_detection(X):
    # Training (with a validation pass) raises no autograd error, e.g. from in-place updates.
    with torch.autograd.set_detect_anomaly(True):
        vae = _small(early_stopping=True, validation_fraction=0.25).fit(X)
    assert np.all(np.isfinite(vae.history_[:, "train_loss"]))
    assert np.all(np.isfinite(vae.history_[:, "valid_loss"]))


def test_vae_step_gives_no_gradient_to_the_discriminator(fitted, X):
    # The VAE update moves the encoder and decoder and leaves the discriminator untouched.
    net = _fresh_net(fitted)
    net.discriminator_optimizer_.zero_grad(set_to_none=True)
    discriminator, vae = _params(net.discriminator_), _params(net.module_)
    net.vae_step((torch.as_tensor(X[:32]), None))
    _assert_same(_params(net.discriminator_), discriminator)
    assert all(p.grad is None for p in net.discriminator_.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(_params(net.module_), vae))


def test_discriminator_step_leaves_the_vae_and_its_gradients_alone(fitted, X):
    # A full step (VAE then discriminator) leaves the encoder's VAE-loss gradient and the
    # VAE's parameters exactly as the VAE update alone does, and moves the discriminator.
    batch = (torch.as_tensor(X[:32]), None)
    full, vae_only = _fresh_net(fitted), _fresh_net(fitted)
    discriminator = _params(vae_only.discriminator_)
    full.train_step(batch)
    vae_only.vae_step(batch)
    assert all(p.grad is not None for p in full.module_.encoder.parameters())
    _assert_same(_grads(full.module_), _grads(vae_only.module_))
    _assert_same(_params(full.module_), _params(vae_only.module_))
    _assert_same(_params(vae_only.discriminator_), discriminator)
    assert all(not torch.equal(a, b) for a, b in zip(_params(full.discriminator_), discriminator))


def test_frozen_discriminator_passes_gradients_to_the_codes_only(fitted):
    # D(z) in the VAE loss equals the discriminator's output; backward reaches z, not D.
    net = _fresh_net(fitted)
    net.discriminator_optimizer_.zero_grad(set_to_none=True)
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), requires_grad=True)
    logits = net._frozen_discriminator(z)
    logits[:, 0].sum().backward()
    assert all(p.grad is None for p in net.discriminator_.parameters())
    z_direct = z.detach().clone().requires_grad_(True)
    expected = net.discriminator_(z_direct)
    expected[:, 0].sum().backward()
    assert_allclose(logits.detach().numpy(), expected.detach().numpy(), rtol=1e-6)
    assert_allclose(z.grad.numpy(), z_direct.grad.numpy(), rtol=1e-6)


def test_optimizers_hold_disjoint_parameters_covering_each_module(fitted):
    # optimizer_ holds exactly the VAE's parameters, discriminator_optimizer_ the discriminator's.
    net = fitted.net_

    def held(optimizer):
        return {id(p) for group in optimizer.param_groups for p in group["params"]}

    vae, discriminator = held(net.optimizer_), held(net.discriminator_optimizer_)
    assert vae == {id(p) for p in fitted.module_.parameters()}
    assert discriminator == {id(p) for p in fitted.discriminator_.parameters()}
    assert not vae & discriminator
    group = net.discriminator_optimizer_.param_groups[0]
    assert group["lr"] == fitted.discriminator_learning_rate
    assert group["betas"] == (0.5, 0.9)
    assert group["fused"] is True and net.optimizer_.param_groups[0]["fused"] is True


def test_loss_is_elbo_plus_annealed_gamma_times_tc_estimate(X):
    # Per batch: loss = reconstruction + KL + min(1, t / T) * gamma * tc_estimate.
    vae = _small(gamma=3.0, anneal_steps=4, max_epochs=2).fit(X)
    loss = np.array(_batch_column(vae, "train_loss"))
    terms = [np.array(_batch_column(vae, f"train_{k}")) for k in ("reconstruction", "kl", "tc_estimate")]
    gamma = np.array(_batch_column(vae, "train_gamma"))
    assert_allclose(gamma, 3.0 * np.minimum(1.0, np.arange(len(loss)) / 4))
    assert_allclose(loss, terms[0] + terms[1] + gamma * terms[2], rtol=1e-5, atol=1e-5)


def test_history_has_discriminator_terms_per_epoch(fitted):
    # Each epoch records the TC estimate and the discriminator's loss and accuracy.
    history = fitted.history_
    for key in ("train_tc_estimate", "train_discriminator_loss", "train_discriminator_accuracy"):
        values = np.asarray(history[:, key])
        assert values.shape == (fitted.n_iter_,)
        assert np.all(np.isfinite(values))
    accuracy = np.asarray(history[:, "train_discriminator_accuracy"])
    assert np.all((accuracy >= 0) & (accuracy <= 1))
    # Epoch value = batch-size-weighted mean of the batch values.
    batches = history[0, "batches"]
    expected = np.average(
        [b["train_discriminator_accuracy"] for b in batches],
        weights=[b["train_batch_size"] for b in batches],
    )
    assert_allclose(accuracy[0], expected)


def test_validation_evaluates_without_training_the_discriminator(X):
    # With early stopping, both optimizers step once per training batch only.
    vae = _small(early_stopping=True, validation_fraction=0.25).fit(X)
    n_train_batches = sum(vae.history_[:, "train_batch_count"])
    assert np.all(np.isfinite(vae.history_[:, "valid_tc_estimate"]))
    assert "valid_discriminator_accuracy" not in vae.history_[-1]
    for optimizer in (vae.net_.optimizer_, vae.net_.discriminator_optimizer_):
        steps = {int(s["step"]) for s in optimizer.state.values()}
        assert steps == {n_train_batches}


def test_warm_start_continues_the_discriminator(X):
    # A warm-started fit keeps training the same discriminator.
    vae = _small(max_epochs=1, warm_start=True).fit(X)
    discriminator = vae.discriminator_
    vae.fit(X)
    assert vae.discriminator_ is discriminator
    steps = {int(s["step"]) for s in vae.net_.discriminator_optimizer_.state.values()}
    assert steps == {2 * 3}


def test_same_seed_same_result(X):
    # Same random_state -> identical codes and discriminator; another seed differs.
    first, second, other = (_small(random_state=s).fit(X) for s in (7, 7, 8))
    assert_array_equal(first.transform(X), second.transform(X))
    _assert_same(_params(first.discriminator_), _params(second.discriminator_))
    assert first.history_[:, "train_discriminator_accuracy"] == (
        second.history_[:, "train_discriminator_accuracy"]
    )
    assert not np.allclose(first.transform(X), other.transform(X))


def test_pickle_and_clone_round_trip(fitted, X):
    # Pickling keeps the model and discriminator; clone + refit reproduces the fit.
    restored = pickle.loads(pickle.dumps(fitted))
    assert_array_equal(restored.transform(X), fitted.transform(X))
    _assert_same(_params(restored.discriminator_), _params(fitted.discriminator_))
    assert restored.net_.discriminator_optimizer_.param_groups[0]["params"][0] is next(
        restored.discriminator_.parameters()
    )
    copy_ = clone(fitted)
    assert copy_.get_params() == fitted.get_params()
    assert not hasattr(copy_, "net_")
    assert_array_equal(copy_.fit(X).transform(X), fitted.transform(X))


def test_discriminator_learns_correlated_codes(X):
    # Trained on strongly correlated codes, the discriminator tells them from permuted ones,
    # and its TC estimate approaches the closed form -log(1 - rho^2) / 2 of a Gaussian pair.
    vae = _small(discriminator_hidden_layer_sizes=(32, 32), discriminator_learning_rate=1e-2,
                 max_epochs=1).fit(X[:32])
    net = _fresh_net(vae)
    generator = torch.Generator().manual_seed(0)
    rho = 0.95

    def codes(n):
        z1 = torch.randn(n, 1, generator=generator)
        z2 = rho * z1 + np.sqrt(1 - rho**2) * torch.randn(n, 1, generator=generator)
        return torch.cat([z1, z2], dim=1)

    for _ in range(30):
        net.history.new_batch()
        net.discriminator_step(codes(128))
    z = codes(2000)
    with torch.no_grad():
        logits_real = net.discriminator_(z)
        logits_permuted = net.discriminator_(permute_dims(z, generator=generator))
    assert discriminator_accuracy(logits_real, logits_permuted) > 0.7
    true_tc = -0.5 * np.log(1 - rho**2)  # 1.16 nats
    estimate = float(discriminator_tc(logits_real))
    assert 0.5 * true_tc < estimate < 2 * true_tc


def test_grid_search_over_gamma(X):
    # GridSearchCV clones, sets gamma and scores (mean ELBO) each candidate.
    search = GridSearchCV(_small(max_epochs=1), {"gamma": [0.0, 10.0]}, cv=2).fit(X)
    assert search.best_params_["gamma"] in (0.0, 10.0)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.gamma == search.best_params_["gamma"]


@pytest.mark.parametrize("params, match", [
    ({"gamma": -1.0}, "gamma"),
    ({"discriminator_learning_rate": 0.0}, "discriminator_learning_rate"),
    ({"discriminator_hidden_layer_sizes": 5}, "discriminator_hidden_layer_sizes"),
])
def test_invalid_parameters(X, params, match):
    # Out-of-range hyperparameters are rejected with the parameter's name.
    with pytest.raises(ValueError, match=match):
        _small(**params).fit(X)
