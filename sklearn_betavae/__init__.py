"""Disentangling variational autoencoders as scikit-learn transformers.

``BetaVAE``, ``BetaTCVAE``, ``FactorVAE`` and ``DIPVAE`` train on PyTorch
through skorch and behave like any scikit-learn transformer.
"""

from ._beta_vae import BetaVAE

__version__ = "0.1.0"

__all__ = ["BetaVAE", "__version__"]
