"""Disentangling variational autoencoders as scikit-learn transformers.

``BetaVAE``, ``BetaTCVAE``, ``FactorVAE`` and ``DIPVAE`` train on PyTorch
through skorch and behave like any scikit-learn transformer; ``save`` and
``load`` keep a fitted model in a safe file (safetensors and JSON).
"""

from ._beta_tcvae import BetaTCVAE
from ._beta_vae import BetaVAE
from ._dip_vae import DIPVAE
from ._factor_vae import FactorVAE
from ._parallel import register_dask_backend
from ._persistence import load, save

# joblib.parallel_backend("dask") raises, instead of hanging, when a worker dies mid-sweep.
register_dask_backend()

__version__ = "0.1.0"

__all__ = ["BetaTCVAE", "BetaVAE", "DIPVAE", "FactorVAE", "load", "save", "__version__"]
