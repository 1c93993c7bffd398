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


def reconstruction_log_likelihood(x, decoded, likelihood):
    """Log-likelihood ``log p(x | z)`` of each sample, summed over features.

    Parameters
    ----------
    x : torch.Tensor of shape (batch_size, n_features)
        Observed data.
    decoded : torch.Tensor of shape (batch_size, n_features)
        Decoder output: logits for ``"bernoulli"``, the mean for ``"gaussian"``.
    likelihood : {"bernoulli", "gaussian"}
        ``"bernoulli"``: ``sum x log s(l) + (1 - x) log(1 - s(l))`` with ``s`` the
        logistic function. ``"gaussian"``: ``log N(x | mean, I)``, unit variance,
        including the ``-0.5 * log(2 pi)`` constant per feature.

    Returns
    -------
    log_likelihood : torch.Tensor of shape (batch_size,)
        In nats.
    """
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(decoded, x, reduction="none").sum(1)
    sq = (x - decoded).pow(2).sum(1)
    return -0.5 * (sq + x.shape[1] * _LOG_2PI)


def decoder_mean(decoded, likelihood):
    """Mean of ``p(x | z)`` from the decoder output (probabilities for Bernoulli)."""
    if likelihood == "bernoulli":
        return torch.sigmoid(decoded)
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
