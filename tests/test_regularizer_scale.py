"""``regularizer_scale``: the whole regulariser weighed against the reconstruction term."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_betavae import BetaTCVAE, BetaVAE, DIPVAE, FactorVAE
from sklearn_betavae._losses import supervised_loss

ESTIMATORS = [BetaVAE, BetaTCVAE, DIPVAE, FactorVAE]


def _small(estimator=BetaVAE, **params):
    defaults = dict(n_components=3, hidden_layer_sizes=(8,), max_epochs=1, batch_size=32,
                    random_state=0)
    if estimator is FactorVAE:
        defaults["discriminator_hidden_layer_sizes"] = (8,)
    return estimator(**{**defaults, **params})


def _data(n_features, n_samples=64, seed=0):
    return np.random.RandomState(seed).rand(n_samples, n_features)


@pytest.mark.parametrize(
    "n_features, params, expected",
    [
        (64, {}, 1.0),  # digits: below the reference, unchanged
        (1024, {}, 1.0),  # 32x32
        (2048, {}, 2.0),
        (2051, {"condition_features": [2048, 2049, 2050]}, 2.0),  # conditions not counted
        (4096, {"image_shape": (64, 64)}, 4.0),  # 64x64 images
        (4096, {"regularizer_scale": 0.5}, 0.5),  # a number is used as given
        (64, {"regularizer_scale": 3}, 3.0),
    ],
)
def test_scale_resolves_from_the_modelled_features(n_features, params, expected):
    # BetaVAE (like BetaTCVAE) defaults to "auto".
    vae = _small(**params).fit(_data(n_features, n_samples=16))
    assert vae.regularizer_scale_ == expected
    assert vae.net_.criterion_.regularizer_scale == expected


@pytest.mark.parametrize(
    "estimator, expected", [(BetaVAE, 2.0), (BetaTCVAE, 2.0), (FactorVAE, 1.0), (DIPVAE, 1.0)]
)
def test_each_model_has_its_measured_default(estimator, expected):
    # "auto" for BetaVAE and BetaTCVAE; 1.0 for FactorVAE and DIPVAE (docs/benchmarks.md).
    vae = _small(estimator).fit(_data(2048, n_samples=16))
    assert vae.regularizer_scale_ == expected


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_objective_scales_every_regularising_term_but_not_the_rest(estimator):
    # loss = reconstruction + s * regulariser + supervision_weight * supervised, for every
    # model: evaluated at s = 1 and s = 3 on the same inputs (and the same draws for the
    # stratified sampling of BetaTCVAE), the regulariser is the loss minus the other two.
    X = _data(24)
    y = np.full((64, 2), np.nan)
    y[:20] = np.random.RandomState(1).rand(20, 2)
    objective = _small(estimator, supervision_weight=2.5).fit(X, y).net_.criterion_
    rng = np.random.RandomState(0)
    x = torch.as_tensor(X[:8], dtype=torch.float32)
    mu, logvar, z = (torch.as_tensor(rng.randn(8, 3), dtype=torch.float32) for _ in range(3))
    logits = torch.as_tensor(rng.randn(8, 2), dtype=torch.float32)
    extra = (logits,) if estimator is FactorVAE else ()
    inputs = (x, mu, logvar, z, torch.zeros(8, 24), *extra)
    supervision = (torch.randn(5, 3), torch.rand(5, 2))
    supervised = supervised_loss(*supervision, "xent").item()
    losses = {}
    for scale in (1.0, 3.0):
        objective.regularizer_scale = scale
        loss, logs = objective(*inputs, step=10**6, generator=torch.Generator().manual_seed(0),
                               supervision=supervision)
        losses[scale] = (loss.item(), logs["reconstruction"].item())
    (loss1, reconstruction), (loss3, reconstruction3) = losses[1.0], losses[3.0]
    assert reconstruction3 == reconstruction
    regulariser = loss1 - reconstruction - 2.5 * supervised
    assert abs(regulariser) > 0.1
    assert_allclose(loss3, reconstruction + 3.0 * regulariser + 2.5 * supervised, rtol=1e-5)


def test_auto_trains_exactly_as_one_up_to_1024_features():
    # The default changes nothing for digits-sized data: identical weights, bit for bit.
    X = _data(64, 128)
    auto = _small(BetaTCVAE, max_epochs=2).fit(X)
    one = _small(BetaTCVAE, max_epochs=2, regularizer_scale=1.0).fit(X)
    assert_array_equal(auto.transform(X), one.transform(X))


def test_auto_on_larger_inputs_trains_as_the_resolved_number():
    X = _data(2048, 64)
    auto = _small(max_epochs=2).fit(X)
    two = _small(max_epochs=2, regularizer_scale=2.0).fit(X)
    one = _small(max_epochs=2, regularizer_scale=1.0).fit(X)
    assert_array_equal(auto.transform(X), two.transform(X))
    assert not np.array_equal(auto.transform(X), one.transform(X))
    # A stronger regulariser lowers the rate (KL) the model pays.
    assert auto.history_[-1, "train_kl"] < one.history_[-1, "train_kl"]


def test_score_is_the_elbo_whatever_the_scale():
    X = _data(2048, 64)
    vae = _small().fit(X)
    copy = pickle.loads(pickle.dumps(vae)).set_params(regularizer_scale=1.0)
    assert copy.score(X) == vae.score(X)


def test_warm_start_applies_a_new_scale():
    X = _data(64)
    vae = _small(warm_start=True).fit(X)
    vae.set_params(regularizer_scale=5.0).fit(X)
    assert vae.regularizer_scale_ == 5.0 and vae.net_.criterion_.regularizer_scale == 5.0


@pytest.mark.parametrize("value", [0, -1.0, "none", None])
def test_invalid_scale_is_rejected(value):
    with pytest.raises(InvalidParameterError, match="regularizer_scale"):
        _small(regularizer_scale=value).fit(_data(8))
