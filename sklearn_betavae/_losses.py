"""Pure torch functions for the VAE objectives.

Every function here maps tensors to tensors and holds no state, so each formula
lives in exactly one place and can be tested against an independent computation.
"""

import math

import torch
import torch.nn.functional as F

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl_per_dim(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) for each sample and dimension.

    Closed form (Kingma & Welling 2014, Appendix B):
    ``0.5 * (mu**2 + exp(logvar) - 1 - logvar)``.

    Parameters
    ----------
    mu, logvar : torch.Tensor of shape (batch_size, n_components)
        Posterior means and log-variances.

    Returns
    -------
    kl : torch.Tensor of shape (batch_size, n_components)
        KL divergence in nats.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


# Below this |logit|, series replace formulas that cancel catastrophically near 0.
_SERIES_CUTOFF = 1.0


def continuous_bernoulli_log_normalizer(logits):
    r"""Log-partition ``A(l) = log((e^l - 1) / l)`` of the continuous Bernoulli.

    Loaiza-Ganem & Cunningham (2019): ``p(x | l) = exp(l x - A(l))`` on
    ``[0, 1]``, the density proportional to ``lambda^x (1 - lambda)^(1 - x)``
    with ``lambda = sigmoid(l)``; their normalising constant is
    ``C(lambda) = exp(softplus(l) - A(l))``. Computed as
    ``max(l, 0) + log1p(-e^-|l|) - log|l|``, and near ``l = 0``
    (``lambda = 1/2``), where that is 0 / 0, by the series of
    ``l / 2 + log(sinh(l / 2) / (l / 2))``.

    Parameters
    ----------
    logits : torch.Tensor
        Natural parameters ``l = logit(lambda)``.

    Returns
    -------
    log_normalizer : torch.Tensor
        ``A(l)``, elementwise.
    """
    a = logits.abs()
    y2 = (0.5 * logits).pow(2)
    series = 0.5 * logits + y2 * (
        1 / 6 - y2 * (1 / 180 - y2 * (1 / 2835 - y2 * (1 / 37800 - y2 / 467775)))
    )
    # Clamped so that the unused branch stays finite, and so does its gradient.
    big = a.clamp(min=_SERIES_CUTOFF)
    closed = logits.clamp(min=0) + torch.log1p(-torch.exp(-big)) - torch.log(big)
    return torch.where(a < _SERIES_CUTOFF, series, closed)


def continuous_bernoulli_mean(logits):
    """Mean of the continuous Bernoulli, ``1 / (1 - e^-l) - 1 / l`` (1/2 at ``l = 0``).

    Computed for ``|l|`` and reflected (``mean(-l) = 1 - mean(l)``, the law of
    ``1 - x``), with a series near 0 where the closed form is inf - inf.
    """
    a = logits.abs()
    # 1/2 + sum_n B_2n a^(2n-1) / (2n)!, Bernoulli numbers B_2 ... B_12.
    a2 = a.pow(2)
    series = 0.5 + a * (
        1 / 12 - a2 * (1 / 720 - a2 * (1 / 30240 - a2 * (1 / 1209600 - a2 * (
            1 / 47900160 - a2 * 691 / 1307674368000))))
    )
    big = a.clamp(min=_SERIES_CUTOFF)
    closed = 1 / -torch.expm1(-big) - 1 / big
    mean = torch.where(a < _SERIES_CUTOFF, series, closed)
    return torch.where(logits < 0, 1 - mean, mean)


def reconstruction_log_likelihood(x, decoded, likelihood):
    """Log-likelihood ``log p(x | z)`` of each sample, summed over features.

    Parameters
    ----------
    x : torch.Tensor of shape (batch_size, n_features)
        Observed data.
    decoded : torch.Tensor of shape (batch_size, n_features)
        Decoder output: logits for ``"bernoulli"`` and
        ``"continuous_bernoulli"``, the mean for ``"gaussian"``.
    likelihood : {"bernoulli", "continuous_bernoulli", "gaussian"}
        ``"bernoulli"``: ``sum x log s(l) + (1 - x) log(1 - s(l))`` with ``s``
        the logistic function, a probability mass for binary x (for x
        strictly inside (0, 1) it is not a normalised density).
        ``"continuous_bernoulli"``: ``sum l x - A(l)``, the normalised density
        of Loaiza-Ganem & Cunningham (2019) on [0, 1] (see
        :func:`continuous_bernoulli_log_normalizer`). ``"gaussian"``:
        ``log N(x | mean, I)``, unit variance, including the
        ``-0.5 * log(2 pi)`` constant per feature.

    Returns
    -------
    log_likelihood : torch.Tensor of shape (batch_size,)
        In nats.
    """
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(decoded, x, reduction="none").sum(1)
    if likelihood == "continuous_bernoulli":
        return (decoded * x - continuous_bernoulli_log_normalizer(decoded)).sum(1)
    sq = (x - decoded).pow(2).sum(1)
    return -0.5 * (sq + x.shape[1] * _LOG_2PI)


def decoder_mean(decoded, likelihood):
    """Mean of ``p(x | z)`` from the decoder output.

    Probabilities for ``"bernoulli"``, the continuous Bernoulli's mean (not
    ``sigmoid(l)``) for ``"continuous_bernoulli"``, the output itself for
    ``"gaussian"``.
    """
    if likelihood == "bernoulli":
        return torch.sigmoid(decoded)
    if likelihood == "continuous_bernoulli":
        return continuous_bernoulli_mean(decoded)
    return decoded


def free_bits_kl(kl_per_dim, free_bits):
    """Free-bits KL of Kingma et al. (2016), eq. (15): ``sum_j max(lambda, KL_j)``.

    Parameters
    ----------
    kl_per_dim : torch.Tensor of shape (batch_size, n_components)
        Per-sample, per-dimension KL in nats.
    free_bits : float
        ``lambda`` in nats per latent dimension. ``KL_j`` is first averaged over
        the minibatch, as in Kingma et al. (2016), then clamped from below.

    Returns
    -------
    penalty : torch.Tensor of shape ()
        ``sum_j max(lambda, mean_batch KL_j)``.
    """
    return torch.clamp(kl_per_dim.mean(0), min=free_bits).sum()


def supervised_loss(means, targets, loss="xent"):
    r"""Supervised term tying the first code dimensions to known factors of variation.

    Locatello et al. (2020), Sec. 3 (``methods/semi_supervised`` of
    disentanglement_lib): on labelled rows, the posterior means
    :math:`\mu(x)` are compared with the factors :math:`y`, rescaled to
    [0, 1], code dimension ``k`` with factor ``k``:

    - ``"xent"``: :math:`\sum_k \mathrm{BCE}(\sigma(\mu_k), y_k)`, the
      cross-entropy between the sigmoid of the code and the factor (the
      paper's default; its minimum is the entropy of :math:`y_k`, not 0);
    - ``"l2"``: :math:`\sum_k (\sigma(\mu_k) - y_k)^2` (disentanglement_lib's
      ``l2`` with ``learn_scale=False``);
    - ``"cov"``: :math:`\sum_{j \ne k} \mathrm{Cov}(\mu_j, y_k)^2` over
      every code dimension ``j`` and factor ``k``, the batch covariance (1 / n)
      of codes and factors pushed to be diagonal: each factor may vary with
      its own code dimension only.

    ``"xent"`` and ``"l2"`` are averaged over the rows and summed over the
    factors, like the reconstruction term (disentanglement_lib sums over the
    rows too, so its weight ``gamma_sup`` is this one divided by the number
    of labelled rows per batch). A NaN target is a factor not known for that
    row: it adds nothing, and ``"cov"`` computes each covariance over the
    rows where the factor is known.

    Parameters
    ----------
    means : torch.Tensor of shape (n_rows, n_components)
        Posterior means of the labelled rows.
    targets : torch.Tensor of shape (n_rows, n_factors)
        Factors rescaled to [0, 1], NaN where unknown; ``n_factors <= n_components``.
    loss : {"xent", "l2", "cov"}, default="xent"
        Which term, see above.

    Returns
    -------
    loss : torch.Tensor of shape ()
    """
    known = ~torch.isnan(targets)
    y = torch.where(known, targets, torch.zeros_like(targets))
    if loss == "cov":
        weights = known.to(means.dtype)
        counts = weights.sum(0).clamp(min=1)
        # Centring y over its known rows makes any centring of the means exact.
        centred_y = (y - y.sum(0) / counts) * weights
        cov = (means - means.mean(0)).T @ centred_y / counts
        diagonal = torch.diagonal(cov)
        return cov.pow(2).sum() - diagonal.pow(2).sum()
    code = means[:, : targets.shape[1]]
    if loss == "xent":
        per_factor = F.binary_cross_entropy_with_logits(code, y, reduction="none")
    else:
        per_factor = (torch.sigmoid(code) - y).pow(2)
    return (per_factor * known).sum() / means.shape[0]


def gaussian_log_density(z, mu, logvar):
    """Elementwise ``log N(z; mu, exp(logvar))``, with the ``log(2 pi)`` constant.

    Parameters
    ----------
    z, mu, logvar : torch.Tensor
        Broadcastable tensors.

    Returns
    -------
    log_density : torch.Tensor
        In nats, of the broadcast shape.
    """
    return -0.5 * (_LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def _log_importance_weights(batch_size, dataset_size, estimator, device, dtype, generator=None):
    """``log w_ij`` of ``q(z_i) ~= sum_j w_ij q(z_i | x_j)`` over a minibatch.

    ``"mws"`` (minibatch weighted sampling, Chen et al. 2018, Sec. 4.1):
    ``w_ij = 1 / B``, the minibatch average of the posteriors. It is *not* an
    unbiased estimate of ``q(z_i)``: ``z_i`` was drawn from ``q(z | x_i)``, one
    of the averaged posteriors, whose weight should be ``1 / N``, not
    ``1 / B``; the estimate is too large, by a factor that grows as the
    posteriors narrow (a mean ratio of 2.9 was measured on a trained model,
    ``benchmarks/bench_estimators.py``).
    Chen et al. print the weight as ``1 / (B N)``; that density integrates to
    ``1 / N``, which shifts ``log q(z)`` by ``-log N`` and each of the ``D``
    marginals by the same, so their total correlation is this one plus
    ``(D - 1) log N`` (a constant: identical gradients, but a TC that does not
    estimate the TC). Dropping the constant altogether (a common bug) shifts it
    by ``-(D - 1) log B`` instead.

    ``"mss"`` (minibatch stratified sampling, Chen et al. 2018, Appendix C.2):
    ``w_ii = 1 / N`` for the point ``z_i`` was drawn from,
    ``w_ij = (N - B + 1) / (N (B - 1))`` for one stratified point ``j`` and
    ``w_ij = 1 / (B - 1)`` for the ``B - 2`` others. Every row sums to 1, and
    for a minibatch drawn uniformly, with the stratified point a uniformly
    random other member, ``E[sum_j w_ij q(z_i | x_j)] = q(z_i)`` exactly. The
    stratified partners follow a random cycle through the batch (each point is
    the partner of exactly one other), drawn from ``generator``: a fixed
    partner such as ``j = i + 1`` is a near neighbour of ``x_i`` whenever the
    batch is ordered like the data (index-sorted batches of ordered data),
    which biases the estimate when ``N`` is not much larger than ``B`` (0.84 to
    0.99 of ``q(z_i)`` in the package's measurements, 1.00 with random
    partners). The authors' reference code
    (``log_importance_weight_matrix``) fills column 0 with ``1 / N`` and column
    1 with the stratified weight (strides of ``B`` over the flattened matrix),
    not the diagonal and its neighbour, and sets one more entry in row
    ``B - 2``: the weights then do not follow the derivation.

    With ``B = 1`` there is no other point to estimate ``q(z)`` from; both
    estimators then use ``q(z_1) ~= q(z_1 | x_1)`` (weight 1), so MI is 0.
    """
    if batch_size == 1:
        return torch.zeros(1, 1, device=device, dtype=dtype)
    if estimator == "mws":
        return torch.full((batch_size, batch_size), -math.log(batch_size), device=device, dtype=dtype)
    if dataset_size < batch_size:
        raise ValueError(
            f"dataset_size={dataset_size} is smaller than the minibatch ({batch_size}); "
            "minibatch stratified sampling needs N >= B."
        )
    n, b = dataset_size, batch_size
    # The three log-weights in double precision (Python floats), then in ``dtype``
    # on the device (MPS has no float64).
    log_weights = torch.full((b, b), -math.log(b - 1), device=device, dtype=dtype)
    cycle = torch.randperm(b, generator=generator, device=device)
    log_weights[cycle, cycle.roll(-1)] = math.log((n - b + 1) / (n * (b - 1)))
    rows = torch.arange(b, device=device)
    log_weights[rows, rows] = -math.log(n)
    return log_weights


def kl_decomposition(z, mu, logvar, dataset_size, estimator="mss", generator=None):
    r"""Split ``log q(z|x) - log p(z)`` into MI, TC and dimension-wise KL terms.

    Chen et al. (2018), eq. (2): averaged over the data,

    .. math::

        \mathrm{KL}(q(z|x) \| p(z)) =
        \underbrace{E[\log q(z|x) - \log q(z)]}_{\text{index-code MI}}
        + \underbrace{E[\log q(z) - \textstyle\sum_j \log q(z_j)]}_{\text{total correlation}}
        + \underbrace{E[\textstyle\sum_j \log q(z_j) - \log p(z)]}_{\text{dimension-wise KL}}

    where ``q(z)`` and ``q(z_j)`` are the aggregate posterior and its
    marginals, estimated on the minibatch by ``q(z_i) ~= sum_j w_ij q(z_i|x_j)``
    with the weights of minibatch weighted ("mws") or stratified ("mss")
    sampling (see ``_log_importance_weights``). The ``B x B x D`` matrix of
    ``log q(z_i,d | x_j)`` is computed once and shared by the joint and the
    marginals.

    Parameters
    ----------
    z : torch.Tensor of shape (batch_size, n_components)
        One sample ``z_i ~ q(z | x_i)`` per row.
    mu, logvar : torch.Tensor of shape (batch_size, n_components)
        Posterior parameters of the minibatch.
    dataset_size : int
        Number of training samples ``N``.
    estimator : {"mss", "mws"}, default="mss"
        Minibatch stratified or weighted sampling.
    generator : torch.Generator or None, default=None
        On ``z``'s device: draws the random stratified partners of ``"mss"``
        (``None``: torch's global generator).

    Returns
    -------
    parts : dict of torch.Tensor of shape (batch_size,)
        ``"mi"``, ``"tc"`` and ``"dwkl"`` per sample; they sum exactly to
        ``log q(z_i|x_i) - log p(z_i)`` and their means are the batch estimates.
    """
    batch_size = z.shape[0]
    # log q(z_i,d | x_j): (B, B, D)
    log_qz_pairs = gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))
    log_w = _log_importance_weights(
        batch_size, dataset_size, estimator, z.device, z.dtype, generator=generator
    )
    log_qz = torch.logsumexp(log_qz_pairs.sum(2) + log_w, dim=1)
    log_qz_marginals = torch.logsumexp(log_qz_pairs + log_w.unsqueeze(2), dim=1).sum(1)
    log_qz_given_x = log_qz_pairs.diagonal(dim1=0, dim2=1).sum(0)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    return {
        "mi": log_qz_given_x - log_qz,
        "tc": log_qz - log_qz_marginals,
        "dwkl": log_qz_marginals - log_pz,
    }


def dip_covariance(mu, logvar, dip_type):
    r"""Covariance of the aggregate posterior matched by DIP-VAE.

    Kumar et al. (2017), Sec. 3: type ``"i"`` uses
    :math:`\mathrm{Cov}_{p(x)}[\mu(x)]`, type ``"ii"`` the full
    :math:`\mathrm{Cov}_{q(z)}[z] = E_{p(x)}[\mathrm{diag}\,\sigma^2(x)] +
    \mathrm{Cov}_{p(x)}[\mu(x)]`, both over the minibatch with the biased
    ``1 / B`` normalisation (``E[mu mu^T] - E[mu] E[mu]^T``, as in the paper).

    Parameters
    ----------
    mu, logvar : torch.Tensor of shape (batch_size, n_components)
    dip_type : {"i", "ii"}

    Returns
    -------
    cov : torch.Tensor of shape (n_components, n_components)
    """
    centred = mu - mu.mean(0, keepdim=True)
    cov = centred.T @ centred / mu.shape[0]
    if dip_type == "ii":
        cov = cov + torch.diag(logvar.exp().mean(0))
    return cov


def dip_regularizer(cov, lambda_od, lambda_d):
    r"""DIP penalty ``lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2``.

    Kumar et al. (2017), eqs. (6)-(7): off-diagonal entries towards 0, the
    diagonal towards 1.
    """
    diag = torch.diagonal(cov)
    off_diagonal = cov.pow(2).sum() - diag.pow(2).sum()
    return lambda_od * off_diagonal + lambda_d * (diag - 1).pow(2).sum()


def permute_dims(z, generator=None):
    """Permute each latent dimension independently across the batch.

    Kim & Mnih (2018), Algorithm 1: samples of ``prod_j q(z_j)`` from samples
    of ``q(z)``. Out of place (a gather), so it is safe on tensors in a graph.

    Parameters
    ----------
    z : torch.Tensor of shape (batch_size, n_components)
    generator : torch.Generator or None
        On ``z``'s device; seeds the permutations.

    Returns
    -------
    z_permuted : torch.Tensor of shape (batch_size, n_components)
    """
    keys = torch.rand(z.shape, generator=generator, device=z.device)
    return torch.gather(z, 0, keys.argsort(dim=0))


def discriminator_tc(logits):
    """Density-ratio estimate of the total correlation, ``E[log D(z) / (1 - D(z))]``.

    Kim & Mnih (2018), eq. (3). Column 0 of ``logits`` scores "a joint sample
    of q(z)", column 1 "a permuted sample of prod_j q(z_j)", so
    ``log D / (1 - D) = logits[:, 0] - logits[:, 1]``.
    """
    return (logits[:, 0] - logits[:, 1]).mean()


def discriminator_loss(logits_real, logits_permuted):
    """Cross-entropy of the discriminator: joint codes are class 0, permuted class 1."""
    real = torch.zeros(logits_real.shape[0], dtype=torch.long, device=logits_real.device)
    permuted = torch.ones(logits_permuted.shape[0], dtype=torch.long, device=logits_real.device)
    return 0.5 * (F.cross_entropy(logits_real, real) + F.cross_entropy(logits_permuted, permuted))


def discriminator_accuracy(logits_real, logits_permuted):
    """Fraction of joint and permuted codes the discriminator classifies correctly."""
    correct = (logits_real.argmax(1) == 0).sum() + (logits_permuted.argmax(1) == 1).sum()
    return correct.float() / (logits_real.shape[0] + logits_permuted.shape[0])
