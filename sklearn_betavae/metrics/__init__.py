"""Disentanglement metrics and scorers (numpy, scipy and scikit-learn only).

Supervised metrics take ``(factors, codes)`` in scikit-learn's order:
``mutual_info_gap``, ``dci``, ``sap_score``, ``modularity_explicitness``.
Unsupervised ones take ``codes``: ``gaussian_total_correlation``,
``active_units``; ``udr_score`` takes several fitted models and scores their
agreement. Intervention-based ones render fresh images with one factor held
fixed and take ``(estimator, sampler)``: ``beta_vae_score``,
``factor_vae_score``. Scorers for model selection:
``make_disentanglement_scorer``, ``reconstruction_scorer``, ``rate_scorer``,
``elbo_scorer``.
"""

from ._intervention import beta_vae_score, factor_vae_score
from ._scorer import (
    elbo_scorer,
    make_disentanglement_scorer,
    rate_scorer,
    reconstruction_scorer,
)
from ._supervised import dci, modularity_explicitness, mutual_info_gap, sap_score
from ._udr import udr_score
from ._unsupervised import active_units, gaussian_total_correlation

__all__ = [
    "active_units",
    "beta_vae_score",
    "dci",
    "elbo_scorer",
    "factor_vae_score",
    "gaussian_total_correlation",
    "make_disentanglement_scorer",
    "modularity_explicitness",
    "mutual_info_gap",
    "rate_scorer",
    "reconstruction_scorer",
    "sap_score",
    "udr_score",
]
