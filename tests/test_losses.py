"""Loss math (``_losses.py``) against independent computations."""

import itertools
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import integrate, stats
from scipy.special import logsumexp

from sklearn_betavae._losses import (
    _log_importance_weights,
    continuous_bernoulli_log_normalizer,
    continuous_bernoulli_mean,
    decoder_mean,
    dip_covariance,
    dip_regularizer,
    discriminator_accuracy,
    discriminator_loss,
    discriminator_tc,
    free_bits_kl,
    gaussian_kl_per_dim,
    gaussian_log_density,
    kl_decomposition,
    permute_dims,
    reconstruction_log_likelihood,
    supervised_loss,
)


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def test_gaussian_kl_per_dim_matches_monte_carlo():
    # Closed-form KL(N(mu, s^2) || N(0, 1)) agrees with a Monte Carlo estimate via scipy.
    rng = np.random.RandomState(0)
    mu, logvar = np.array([[0.5, -1.0, 0.0]]), np.array([[-1.0, 0.3, 0.0]])
    sd = np.exp(0.5 * logvar)
    z = mu + sd * rng.randn(400_000, 3)
    mc = np.mean(stats.norm.logpdf(z, mu, sd) - stats.norm.logpdf(z), axis=0)
    kl = gaussian_kl_per_dim(_t(mu), _t(logvar)).numpy()[0]
    assert_allclose(kl, mc, atol=5e-3)
    assert kl[2] == 0.0


def test_reconstruction_log_likelihood_matches_scipy():
    # Bernoulli (logits) and unit-variance Gaussian log-likelihoods equal scipy's, summed.
    rng = np.random.RandomState(0)
    x = (rng.rand(5, 7) > 0.5).astype(float)
    logits = rng.randn(5, 7)
    expected = stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).sum(1)
    assert_allclose(reconstruction_log_likelihood(_t(x), _t(logits), "bernoulli"), expected)
    y, mean = rng.randn(5, 7), rng.randn(5, 7)
    expected = stats.norm.logpdf(y, mean, 1.0).sum(1)
    assert_allclose(reconstruction_log_likelihood(_t(y), _t(mean), "gaussian"), expected)


_LOGITS = [-60.0, -8.0, -1.0001, -1.0, -0.5, -1e-4, 0.0, 1e-6, 0.3, 0.9999, 1.0, 2.5, 30.0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_continuous_bernoulli_is_a_normalised_density_with_that_mean(dtype):
    # exp(l x - A(l)) integrates to 1 over [0, 1] and has the mean we return (scipy's quad),
    # on both sides of the series / closed-form switch and far out; gradients stay finite.
    logits = torch.tensor(_LOGITS, dtype=dtype, requires_grad=True)
    log_norm = continuous_bernoulli_log_normalizer(logits)
    mean = continuous_bernoulli_mean(logits)
    (log_norm.sum() + mean.sum()).backward()
    assert torch.isfinite(logits.grad).all()
    tolerance = 1e-9 if dtype == torch.float64 else 2e-6
    for l, a, m in zip(_LOGITS, log_norm.tolist(), mean.tolist()):
        mass = integrate.quad(lambda x: math.exp(l * x - a), 0, 1, points=[0.01, 0.1])[0]
        first = integrate.quad(lambda x: x * math.exp(l * x - a), 0, 1, points=[0.01, 0.1])[0]
        assert mass == pytest.approx(1.0, abs=tolerance * max(1, abs(a))), l
        assert m == pytest.approx(first, abs=tolerance), l


def test_continuous_bernoulli_log_likelihood_and_decoder_mean():
    # log p(x|l) = sum_f l x - A(l), i.e. the Bernoulli cross-entropy plus log C(lambda) of
    # Loaiza-Ganem & Cunningham (2019): log C = log(2 atanh(1 - 2 lambda) / (1 - 2 lambda)).
    rng = np.random.RandomState(0)
    x, logits = rng.rand(4, 6), rng.randn(4, 6) * 3
    lam = 1 / (1 + np.exp(-logits))
    log_c = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
    expected = (x * np.log(lam) + (1 - x) * np.log(1 - lam) + log_c).sum(1)
    got = reconstruction_log_likelihood(_t(x), _t(logits), "continuous_bernoulli")
    assert_allclose(got.numpy(), expected, rtol=1e-9)
    mean = lam / (2 * lam - 1) + 1 / (2 * np.arctanh(1 - 2 * lam))
    assert_allclose(decoder_mean(_t(logits), "continuous_bernoulli").numpy(), mean, rtol=1e-10)


def test_gaussian_log_density_matches_scipy():
    # log N(z; mu, exp(logvar)) equals scipy.stats.norm.logpdf.
    z, mu, logvar = np.array([0.3, -2.0]), np.array([0.0, 1.0]), np.array([0.5, -0.7])
    expected = stats.norm.logpdf(z, mu, np.exp(0.5 * logvar))
    assert_allclose(gaussian_log_density(_t(z), _t(mu), _t(logvar)), expected)


def test_free_bits_matches_loop():
    # sum_j max(lambda, mean_batch KL_j), computed with explicit loops.
    kl = np.array([[0.1, 2.0, 0.4], [0.3, 1.0, 0.8]])
    expected = 0.0
    for j in range(3):
        expected += max(0.5, sum(kl[i, j] for i in range(2)) / 2)
    assert free_bits_kl(_t(kl), 0.5).item() == pytest.approx(expected)


def _correlated_aggregate(batch_size, seed, dataset_size=200_000):
    """Posteriors N(m_i, s^2 I) with m_i ~ N(0, R - s^2 I): the aggregate is N(0, R)."""
    gen = torch.Generator().manual_seed(seed)
    corr = torch.tensor([[1, 0.6, 0.3], [0.6, 1, 0.5], [0.3, 0.5, 1.0]], dtype=torch.float64)
    s2 = 0.1
    chol = torch.linalg.cholesky(corr - s2 * torch.eye(3, dtype=torch.float64))
    mu = torch.randn(batch_size, 3, generator=gen, dtype=torch.float64) @ chol.T
    logvar = torch.full_like(mu, math.log(s2))
    z = mu + math.sqrt(s2) * torch.randn(mu.shape, generator=gen, dtype=torch.float64)
    return z, mu, logvar, dataset_size, -0.5 * math.log(torch.linalg.det(corr).item())


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_tc_estimators_approach_closed_form(estimator):
    # TC of a correlated Gaussian aggregate posterior is -1/2 log det(R); the error shrinks
    # as the batch grows and is small at B = 2048.
    errors = {}
    for batch_size in (64, 2048):
        estimates = []
        for seed in range(3):
            z, mu, logvar, n, true_tc = _correlated_aggregate(batch_size, seed)
            estimates.append(kl_decomposition(z, mu, logvar, n, estimator)["tc"].mean().item())
        errors[batch_size] = abs(np.mean(estimates) - true_tc)
    assert errors[2048] < errors[64]
    assert errors[2048] < 0.05


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_kl_parts_sum_to_log_ratio_and_average_to_kl(estimator):
    # mi + tc + dwkl = log q(z|x) - log p(z) per sample, so with alpha = beta = gamma = 1 the
    # objective's expectation over z is the analytic KL of the plain ELBO.
    rng = np.random.RandomState(0)
    mu, logvar = rng.randn(16, 3), rng.randn(16, 3) * 0.5
    sd = np.exp(0.5 * logvar)
    z = mu + sd * rng.randn(16, 3)
    parts = kl_decomposition(_t(z), _t(mu), _t(logvar), 100, estimator)
    total = (parts["mi"] + parts["tc"] + parts["dwkl"]).numpy()
    expected = stats.norm.logpdf(z, mu, sd).sum(1) - stats.norm.logpdf(z).sum(1)
    assert_allclose(total, expected, atol=1e-10)

    z = mu + sd * rng.randn(2000, 16, 3)
    mean_total = np.mean([
        sum(kl_decomposition(_t(zk), _t(mu), _t(logvar), 100, estimator)[k].mean().item()
            for k in ("mi", "tc", "dwkl"))
        for zk in z
    ])
    analytic = gaussian_kl_per_dim(_t(mu), _t(logvar)).sum(1).mean().item()
    assert mean_total == pytest.approx(analytic, abs=0.05)


def _brute_force_log_qz(z, mu, logvar, weight):
    """log sum_j w(i, j) q(z_i | x_j) and its per-dimension marginals, with loops."""
    batch_size, dim = z.shape
    sd = np.exp(0.5 * logvar)
    log_qz, log_marginals = np.zeros(batch_size), np.zeros(batch_size)
    for i in range(batch_size):
        joint = [math.log(weight(i, j)) + stats.norm.logpdf(z[i], mu[j], sd[j]).sum()
                 for j in range(batch_size)]
        log_qz[i] = logsumexp(joint)
        for d in range(dim):
            terms = [math.log(weight(i, j)) + stats.norm.logpdf(z[i, d], mu[j, d], sd[j, d])
                     for j in range(batch_size)]
            log_marginals[i] += logsumexp(terms)
    return log_qz, log_marginals


def _random_partners(b, seed):
    """The stratified partner of each row: the next point on a random cycle (as documented)."""
    cycle = torch.randperm(b, generator=torch.Generator().manual_seed(seed)).tolist()
    return {cycle[k]: cycle[(k + 1) % b] for k in range(b)}


def _mss_weight(n, b, partner):
    def weight(i, j):
        if i == j:
            return 1 / n
        if j == partner[i]:  # the one stratified point of row i
            return (n - b + 1) / (n * (b - 1))
        return 1 / (b - 1)
    return weight


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_tc_estimators_match_brute_force(estimator):
    # The vectorised estimators equal loops over i, j with the weights written out.
    rng = np.random.RandomState(1)
    b, n, dim = 5, 12, 3
    mu, logvar = rng.randn(b, dim), rng.randn(b, dim) * 0.3
    z = mu + np.exp(0.5 * logvar) * rng.randn(b, dim)
    if estimator == "mss":
        weight = _mss_weight(n, b, _random_partners(b, seed=7))
    else:
        weight = lambda i, j: 1 / b  # noqa: E731
    log_qz, log_marginals = _brute_force_log_qz(z, mu, logvar, weight)
    parts = kl_decomposition(_t(z), _t(mu), _t(logvar), n, estimator,
                             generator=torch.Generator().manual_seed(7))
    assert_allclose(parts["tc"].numpy(), log_qz - log_marginals, atol=1e-10)
    log_pz = stats.norm.logpdf(z).sum(1)
    assert_allclose(parts["dwkl"].numpy(), log_marginals - log_pz, atol=1e-10)


def test_mss_partners_are_a_random_cycle():
    # Each row has one stratified partner, each point is the partner of one row, and the
    # pairing changes from draw to draw.
    b, n = 8, 100
    pairings = set()
    for seed in range(20):
        log_w = _log_importance_weights(b, n, "mss", "cpu", torch.float64,
                                        generator=torch.Generator().manual_seed(seed))
        stratified = np.isclose(log_w.exp().numpy(), (n - b + 1) / (n * (b - 1)))
        assert_array_equal(stratified.sum(0), 1)
        assert_array_equal(stratified.sum(1), 1)
        assert not np.diag(stratified).any()
        pairings.add(tuple(stratified.argmax(1)))
    assert len(pairings) > 15


def test_mss_is_unbiased_on_batches_ordered_like_the_data():
    # Every index-sorted minibatch of ordered data that contains point a: averaged over them
    # (and the random partners), sum_j w_aj q(z | x_j) equals q(z) = mean_n q(z | x_n). A
    # fixed partner (the next row, a near neighbour here) gives 0.84 of q(z) in this setup.
    n, b, anchor, z = 8, 4, 3, 3.6
    q = stats.norm.pdf(z, np.arange(n, dtype=float), 0.6)  # posteriors ordered like the data
    generator = torch.Generator().manual_seed(0)
    estimates = []
    for batch in itertools.combinations(range(n), b):
        if anchor not in batch:
            continue
        i = batch.index(anchor)
        weights = np.mean([
            _log_importance_weights(b, n, "mss", "cpu", torch.float64, generator=generator)[i]
            .exp().numpy()
            for _ in range(200)
        ], axis=0)
        estimates.append(weights @ q[list(batch)])
    assert_allclose(np.mean(estimates), q.mean(), rtol=0.01)


def test_mss_weights_are_normalised_in_every_row():
    # Each row of the stratified weights sums to 1, with 1/N on the diagonal.
    b, n = 6, 50
    weights = _log_importance_weights(b, n, "mss", "cpu", torch.float64).exp().numpy()
    assert_allclose(weights.sum(1), 1.0)
    assert_allclose(np.diag(weights), 1 / n)
    # so for identical posteriors q(z) = q(z | x): MI is exactly 0 for every row
    mu, logvar = torch.zeros(b, 2), torch.zeros(b, 2)
    z = torch.randn(b, 2)
    assert_allclose(kl_decomposition(z, mu, logvar, n, "mss")["mi"].numpy(), 0.0, atol=1e-6)


def test_mws_relates_to_the_printed_log_bn_constant():
    # Chen et al.'s printed 1/(B N) weights give this TC plus (D - 1) log N.
    rng = np.random.RandomState(2)
    b, n, dim = 4, 1000, 3
    mu, logvar = rng.randn(b, dim), np.zeros((b, dim))
    z = mu + rng.randn(b, dim)
    log_qz, log_marginals = _brute_force_log_qz(z, mu, logvar, lambda i, j: 1 / (b * n))
    tc = kl_decomposition(_t(z), _t(mu), _t(logvar), n, "mws")["tc"].numpy()
    assert_allclose(log_qz - log_marginals, tc + (dim - 1) * math.log(n), atol=1e-10)


def test_tc_edge_cases():
    # B = 1 gives MI = 0 and finite parts; B = 2 is finite; MSS with N < B is refused.
    z, mu, logvar = torch.randn(1, 3), torch.randn(1, 3), torch.zeros(1, 3)
    for est in ("mss", "mws"):
        parts = kl_decomposition(z, mu, logvar, 10, est)
        assert parts["mi"].item() == 0.0
        assert all(torch.isfinite(v).all() for v in parts.values())
        parts = kl_decomposition(torch.randn(2, 3), torch.randn(2, 3), torch.zeros(2, 3), 2, est)
        assert all(torch.isfinite(v).all() for v in parts.values())
    with pytest.raises(ValueError, match="smaller than the minibatch"):
        kl_decomposition(torch.randn(4, 2), torch.randn(4, 2), torch.zeros(4, 2), 3, "mss")


@pytest.mark.parametrize("dip_type", ["i", "ii"])
def test_dip_covariance_matches_numpy(dip_type):
    # Type i: Cov[mu] (1/B); type ii adds E[diag sigma^2].
    rng = np.random.RandomState(0)
    mu, logvar = rng.randn(32, 4), rng.randn(32, 4) * 0.2
    expected = np.cov(mu, rowvar=False, ddof=0)
    if dip_type == "ii":
        expected = expected + np.diag(np.exp(logvar).mean(0))
    assert_allclose(dip_covariance(_t(mu), _t(logvar), dip_type).numpy(), expected, atol=1e-12)


def test_dip_regularizer_matches_loop():
    # lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2 with loops.
    cov = np.array([[1.5, 0.2, -0.1], [0.2, 0.7, 0.3], [-0.1, 0.3, 1.0]])
    expected = 0.0
    for i in range(3):
        for j in range(3):
            expected += 2.0 * cov[i, j] ** 2 if i != j else 5.0 * (cov[i, i] - 1) ** 2
    assert dip_regularizer(_t(cov), 2.0, 5.0).item() == pytest.approx(expected)


def test_permute_dims_permutes_each_column():
    # Each column is a permutation of itself, columns move independently, seeded, differentiable.
    z = torch.arange(40.0).reshape(10, 4).requires_grad_(True)
    out = permute_dims(z, torch.Generator().manual_seed(0))
    for j in range(4):
        assert sorted(out[:, j].tolist()) == z[:, j].tolist()
    rows_kept = (out - out[:, :1]).detach()  # in z, every row is (k, k+1, k+2, k+3)
    assert not torch.all(rows_kept == torch.arange(4.0))
    assert torch.equal(out, permute_dims(z, torch.Generator().manual_seed(0)))
    out.sum().backward()
    assert torch.all(z.grad == 1)


def test_discriminator_terms_match_manual_softmax():
    # TC = mean log D/(1 - D) with D = softmax(logits)[:, 0]; CE loss and accuracy by hand.
    real = np.array([[2.0, -1.0], [0.5, 1.0]])
    perm = np.array([[-1.0, 1.0], [0.3, 0.1]])
    p_real = np.exp(real) / np.exp(real).sum(1, keepdims=True)
    p_perm = np.exp(perm) / np.exp(perm).sum(1, keepdims=True)
    tc = np.mean(np.log(p_real[:, 0] / (1 - p_real[:, 0])))
    assert discriminator_tc(_t(real)).item() == pytest.approx(tc)
    loss = 0.5 * (-np.mean(np.log(p_real[:, 0])) - np.mean(np.log(p_perm[:, 1])))
    assert discriminator_loss(_t(real), _t(perm)).item() == pytest.approx(loss)
    assert discriminator_accuracy(_t(real), _t(perm)).item() == pytest.approx(2 / 4)


def test_supervised_loss_matches_an_independent_computation():
    # The three supervised terms of Locatello et al. (2020), with unknown (NaN) factors
    # skipped, against numpy loops: "xent" and "l2" per row and factor, "cov" per pair of
    # code and factor over the rows where the factor is known.
    rng = np.random.RandomState(0)
    means = rng.randn(7, 4)
    targets = rng.rand(7, 3)
    targets[[1, 4], 0] = np.nan
    targets[2, 2] = np.nan
    sigmoid = 1 / (1 + np.exp(-means))
    xent = l2 = 0.0
    for i, k in itertools.product(range(7), range(3)):
        if not np.isnan(targets[i, k]):
            y = targets[i, k]
            xent -= y * np.log(sigmoid[i, k]) + (1 - y) * np.log(1 - sigmoid[i, k])
            l2 += (sigmoid[i, k] - y) ** 2
    cov = 0.0
    for j, k in itertools.product(range(4), range(3)):
        if j != k:
            known = ~np.isnan(targets[:, k])
            cov += np.cov(means[known, j], targets[known, k], bias=True)[0, 1] ** 2
    assert_allclose(supervised_loss(_t(means), _t(targets), "xent"), xent / 7)
    assert_allclose(supervised_loss(_t(means), _t(targets), "l2"), l2 / 7)
    assert_allclose(supervised_loss(_t(means), _t(targets), "cov"), cov)
    # A code equal to the factor's logit minimises "xent" and zeroes "l2".
    full = rng.uniform(0.1, 0.9, (5, 2))
    logits = np.hstack([np.log(full / (1 - full)), rng.randn(5, 1)])
    assert_allclose(supervised_loss(_t(logits), _t(full), "l2"), 0.0, atol=1e-12)
    entropy = -(full * np.log(full) + (1 - full) * np.log(1 - full)).sum(1).mean()
    assert_allclose(supervised_loss(_t(logits), _t(full), "xent"), entropy)


def test_mws_with_the_whole_dataset_as_batch_gives_each_term_exactly():
    # With B = N the minibatch-weighted estimate of log q(z) is exact, so MI, TC and
    # dimension-wise KL must each equal their definition on the empirical aggregate
    # posterior q(z) = (1/N) sum_n q(z|x_n), computed here independently: expectations over
    # z ~ q(z|x_i) by Gauss-Hermite quadrature, densities with scipy. The sum of the three
    # equals the closed-form mean KL whatever the weights (telescoping), so only the terms
    # one by one catch a wrong constant (a dropped log N shifts TC by (D - 1) log N).
    rng = np.random.RandomState(3)
    n, d = 5, 2
    mu = rng.randn(n, d) * 1.2
    mu[:, 1] += 0.8 * mu[:, 0]  # correlated means: a clearly positive TC
    logvar = np.log(rng.uniform(0.05, 0.5, (n, d)))
    sd = np.exp(0.5 * logvar)
    t, w = np.polynomial.hermite.hermgauss(30)
    nodes = np.sqrt(2) * np.stack([g.ravel() for g in np.meshgrid(t, t, indexing="ij")], 1)
    weights = np.outer(w, w).ravel() / math.pi  # E[f(u)], u ~ N(0, I_2)
    exact = np.zeros(3)
    for i in range(n):
        z = mu[i] + sd[i] * nodes
        log_q_each = stats.norm.logpdf(z[:, None, :], mu[None], sd[None])  # (K, N, D)
        log_q_zx = log_q_each[:, i, :].sum(1)
        log_q_z = logsumexp(log_q_each.sum(2), axis=1) - math.log(n)
        log_prod_marginals = (logsumexp(log_q_each, axis=1) - math.log(n)).sum(1)
        log_prior = stats.norm.logpdf(z).sum(1)
        exact += weights @ np.column_stack([log_q_zx - log_q_z, log_q_z - log_prod_marginals,
                                            log_prod_marginals - log_prior]) / n
    mu_t, logvar_t = torch.tensor(mu), torch.tensor(logvar)
    estimated = np.zeros(3)
    for node, weight in zip(nodes, weights):  # every row at the same standard node
        parts = kl_decomposition(torch.tensor(mu + sd * node), mu_t, logvar_t, n, "mws")
        estimated += weight * np.array([parts[k].mean().item() for k in ("mi", "tc", "dwkl")])
    assert exact[1] > 0.1
    assert_allclose(estimated, exact, atol=1e-6)
    assert_allclose(exact.sum(), gaussian_kl_per_dim(mu_t, logvar_t).sum(1).mean().item(),
                    atol=1e-6)


def test_dip_ii_covariance_is_the_covariance_of_samples_of_q_z():
    # DIP-VAE-II matches Cov_q(z)[z] of the aggregate posterior q(z) = (1/B) sum_i
    # N(mu_i, diag sigma_i^2): checked against the covariance of 400,000 draws of z
    # (pick a row uniformly, then z from its posterior); DIP-VAE-I ignores the variances.
    rng = np.random.RandomState(0)
    mu = rng.randn(6, 3)
    mu[:, 2] += mu[:, 0]
    logvar = np.log(rng.uniform(0.2, 2.0, (6, 3)))
    rows = rng.randint(6, size=400_000)
    z = mu[rows] + np.exp(0.5 * logvar[rows]) * rng.randn(400_000, 3)
    sampled = np.cov(z.T, bias=True)
    mu_t, logvar_t = torch.tensor(mu), torch.tensor(logvar)
    assert_allclose(dip_covariance(mu_t, logvar_t, "ii").numpy(), sampled, atol=0.03)
    assert_allclose(dip_covariance(mu_t, logvar_t * 0 - 30, "ii").numpy(),
                    dip_covariance(mu_t, logvar_t, "i").numpy(), atol=1e-9)


def test_gaussian_kl_per_dim_matches_quadrature_at_extreme_variances():
    # KL(N(mu, s^2) || N(0, 1)) = E_q[log q - log p], by scipy's adaptive quadrature, for
    # very narrow and very wide posteriors (logvar from -12 to 4) and far means.
    for mu, logvar in [(0.3, -12.0), (-4.0, -6.0), (2.0, 4.0), (8.0, 0.5)]:
        sd = math.exp(0.5 * logvar)

        def integrand(z, mu=mu, sd=sd):
            return stats.norm.pdf(z, mu, sd) * (stats.norm.logpdf(z, mu, sd) - stats.norm.logpdf(z))

        exact, _ = integrate.quad(integrand, mu - 40 * sd, mu + 40 * sd, points=[mu], limit=200)
        kl = gaussian_kl_per_dim(_t([[mu]]), _t([[logvar]])).item()
        assert_allclose(kl, exact, rtol=1e-7)


def test_bayes_optimal_discriminator_estimates_the_closed_form_tc():
    # Given the Bayes-optimal logits, log q(z) for "joint" (column 0) and log prod_j q(z_j)
    # for "permuted" (column 1), the density-ratio estimate of Kim & Mnih is a Monte Carlo
    # estimate of TC = KL(q(z) || prod_j q(z_j)), -log(1 - rho^2) / 2 for a bivariate normal
    # of correlation rho: checks the formula and which column means what.
    rng = np.random.RandomState(0)
    rho = 0.8
    cov = np.array([[1.0, rho], [rho, 1.0]])
    z = rng.multivariate_normal([0, 0], cov, size=200_000)
    joint = stats.multivariate_normal([0, 0], cov).logpdf(z)
    product = stats.norm.logpdf(z).sum(1)
    logits = _t(np.column_stack([joint, product]))
    assert_allclose(discriminator_tc(logits).item(), -0.5 * math.log(1 - rho**2), rtol=0.01)
    # The loss of the Bayes-optimal discriminator is below chance's log 2.
    permuted = np.column_stack([z[:, 0], rng.permutation(z[:, 1])])
    logits_permuted = _t(np.column_stack([stats.multivariate_normal([0, 0], cov).logpdf(permuted),
                                          stats.norm.logpdf(permuted).sum(1)]))
    assert discriminator_loss(logits, logits_permuted).item() < math.log(2) - 0.05
