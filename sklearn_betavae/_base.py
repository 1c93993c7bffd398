"""Shared base of the VAE estimators: the whole scikit-learn contract.

A concrete estimator adds its hyperparameters and one method,
``_make_objective``, returning the :class:`~sklearn_betavae._net.VAEObjective`
that holds its regulariser.
"""

import copy
import threading
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from skorch.callbacks import EarlyStopping
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._losses import decoder_mean, gaussian_kl_per_dim, reconstruction_log_likelihood
from ._modules import build_vae_module
from ._net import ArrayDataset, HoldoutSplit, TrainingDivergedError, VAENet
from ._parallel import limit_torch_threads_to_dask_worker

# Input dtypes used as they are; anything else is converted to float64. uint8 and
# bool are cast to float32 per batch, so a large image array is never copied whole.
_INPUT_DTYPES = (np.float64, np.float32, np.uint8, np.bool_)
# Monte Carlo samples of z per x in score_samples / rate_distortion.
_N_SCORE_SAMPLES = 8
# torch's global RNG is forked and re-seeded while modules are initialised;
# the lock keeps concurrent fits in threads from interleaving there.
_INIT_LOCK = threading.Lock()


def _resolve_device(device):
    """Map ``"auto"`` to ``"cuda"`` or ``"cpu"`` and check CUDA is there when asked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='cpu' or device='auto'."
        )
    return device


def _image_shape(image_shape, n_features):
    """Normalise ``image_shape`` to ``(channels, height, width)`` and check it."""
    if image_shape is None:
        return None
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (height, width) or (channels, height, width); got {image_shape!r}."
        )
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"image_shape={image_shape!r} holds {int(np.prod(shape))} values but X has "
            f"{n_features} features."
        )
    if shape[1] % 16 or shape[2] % 16:
        raise ValueError(
            f"image_shape={image_shape!r}: height and width must be multiples of 16 for "
            "the four stride-2 convolutions."
        )
    return shape


def _check_bernoulli_range(X, likelihood):
    """Bernoulli likelihood needs X in [0, 1]: say so instead of training on nonsense."""
    if likelihood != "bernoulli" or X.dtype == np.bool_:
        return
    x_min, x_max = X.min(), X.max()
    if x_min < 0 or x_max > 1:
        raise ValueError(
            f"likelihood='bernoulli' needs X in [0, 1], but X has values in "
            f"[{x_min}, {x_max}]. Scale X (e.g. MinMaxScaler, or divide uint8 images by "
            "255) or use likelihood='gaussian'."
        )


def _output_dtype(dtype):
    """float32 stays float32; everything else gives float64 (scikit-learn's rule)."""
    return np.float32 if dtype == np.float32 else np.float64


class _BaseVAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the VAE estimators. Not to be used directly.

    Holds fitting (on a skorch :class:`~sklearn_betavae._net.VAENet`),
    validation, ``transform`` (posterior means), ``inverse_transform``
    (decoder means), ``sample``, ``score_samples`` / ``score`` (ELBO) and
    ``rate_distortion``. Subclasses add hyperparameters and ``_make_objective``.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", None],
        "image_shape": ["array-like", None],
        "likelihood": [StrOptions({"auto", "bernoulli", "gaussian"})],
        "anneal_steps": [Interval(Integral, 0, None, closed="left")],
        "free_bits": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
    }

    #: skorch net class; FactorVAE brings its own with a discriminator step.
    _net_class = VAENet

    @abstractmethod
    def __init__(
        self,
        n_components=10,
        *,
        anneal_steps=0,
        free_bits=0.0,
        likelihood="auto",
        hidden_layer_sizes=None,
        image_shape=None,
        batch_size=64,
        learning_rate=1e-3,
        max_epochs=50,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="cpu",
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.n_components = n_components
        self.anneal_steps = anneal_steps
        self.free_bits = free_bits
        self.likelihood = likelihood
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to X.

        With ``warm_start=True`` and a fitted model, training continues from
        the current weights for ``max_epochs`` more epochs.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Training data: float64, float32, uint8 or bool arrays are used as
            they are (uint8 and bool are cast to float32 per batch, never as a
            whole); ``numpy.memmap`` inputs are read batch by batch.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        continuing = self.warm_start and hasattr(self, "net_")
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=not continuing)
        return self._fit(X, epochs=self.max_epochs, continuing=continuing)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one epoch on X, initialising the model on the first call.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Training data, as in :meth:`fit`.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The estimator, trained for one more epoch.
        """
        continuing = hasattr(self, "net_")
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=not continuing)
        return self._fit(X, epochs=1, continuing=continuing)

    def transform(self, X):
        """Encode X as the posterior means ``E[z | x]``.

        Deterministic, like :meth:`sklearn.decomposition.FactorAnalysis.transform`.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means; float32 for float32 X, float64 otherwise.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=False)
        with torch.inference_mode():
            mu = [self.net_.module_(x)[0].cpu() for x in self.net_.iter_inference_batches(X)]
        return torch.cat(mu).numpy().astype(_output_dtype(X.dtype), copy=False)

    def kl_per_dim(self, X):
        """KL divergence of each posterior dimension from the prior, in nats.

        ``KL(q(z_j | x) || N(0, 1))`` in closed form for every sample and
        latent dimension; its mean over samples tells which dimensions carry
        information (about zero for a collapsed one), and its row sums are
        the rate of :meth:`rate_distortion`.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        kl : ndarray of shape (n_samples, n_components)
            Per-sample, per-dimension KL, float64.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=False)
        with torch.inference_mode():
            kl = [
                gaussian_kl_per_dim(*(t.double() for t in self.net_.module_(x))).cpu()
                for x in self.net_.iter_inference_batches(X)
            ]
        return torch.cat(kl).numpy()

    def inverse_transform(self, X):
        """Decode latent codes to the mean of ``p(x | z)`` in input space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Decoder means: probabilities for a Bernoulli likelihood, means for
            a Gaussian one; float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=(np.float64, np.float32), input_name="X")
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__}.inverse_transform "
                f"is expecting {self.n_components} latent components as input."
            )
        return self._decode(Z, dtype=_output_dtype(Z.dtype))

    def sample(self, n_samples=1, random_state=None):
        """Generate samples: draw ``z ~ N(0, I)`` and decode it.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the prior draws (the global torch RNG is not touched).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Decoder means of the drawn codes (probabilities for Bernoulli).
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
        generator = torch.Generator().manual_seed(int(seed))
        Z = torch.randn(n_samples, self.n_components, generator=generator).numpy()
        return self._decode(Z, dtype=self._sample_dtype)

    def rate_distortion(self, X):
        """Per-sample rate and distortion in nats, the two terms of the ELBO.

        ``rate = KL(q(z|x) || N(0, I))`` (closed form) and
        ``distortion = -E_q(z|x)[log p(x|z)]``, estimated with 8 reparameterised
        samples per x whose noise is fixed at fit time (shared by all x), so
        that the result is deterministic and does not depend on which other
        samples are in X. ``elbo = -(rate + distortion)``.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to evaluate.

        Returns
        -------
        rate : ndarray of shape (n_samples,)
            KL divergence of each posterior from the prior, float64.
        distortion : ndarray of shape (n_samples,)
            Expected negative log-likelihood of each sample, float64.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=False)
        _check_bernoulli_range(X, self.likelihood_)
        net = self.net_
        eps = torch.randn(
            _N_SCORE_SAMPLES,
            1,
            self.n_components,
            generator=torch.Generator().manual_seed(self._score_seed),
        ).to(net.device)
        rates, distortions = [], []
        with torch.inference_mode():
            for x in net.iter_inference_batches(X):
                mu, logvar = net.module_(x)
                z = (mu + torch.exp(0.5 * logvar) * eps).reshape(-1, self.n_components)
                # Reductions in float64: per-sample sums must not depend on the batch layout.
                decoded = net.module_.decode(z).double()
                x_rep = x.double().expand(_N_SCORE_SAMPLES, *x.shape).reshape(-1, x.shape[1])
                log_px = reconstruction_log_likelihood(x_rep, decoded, self.likelihood_)
                distortions.append(-log_px.reshape(_N_SCORE_SAMPLES, -1).mean(0).cpu())
                rates.append(gaussian_kl_per_dim(mu.double(), logvar.double()).sum(1).cpu())
        return torch.cat(rates).numpy(), torch.cat(distortions).numpy()

    def score_samples(self, X):
        """Evidence lower bound of each sample at beta = 1, in nats.

        ``ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I)) <= log p(x)``,
        whatever the training objective was (beta, annealing and free bits
        only shape training). See :meth:`rate_distortion` for the estimate.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to evaluate.

        Returns
        -------
        elbo : ndarray of shape (n_samples,)
            Per-sample ELBO, float64.
        """
        rate, distortion = self.rate_distortion(X)
        return -(rate + distortion)

    def score(self, X, y=None):
        """Mean ELBO of X in nats (higher is better).

        The default criterion of :class:`~sklearn.model_selection.GridSearchCV`,
        like :meth:`sklearn.mixture.GaussianMixture.score`.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to evaluate.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        elbo : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    @property
    def history_(self):
        """skorch ``History`` of the training: one row per epoch.

        Per epoch: ``train_loss``, ``train_reconstruction`` (distortion,
        ``-E[log p(x|z)]``), ``train_kl`` (rate), ``train_kl_per_dim``,
        ``train_mi``, ``train_tc``, ``train_dwkl`` (the KL split of Chen et al.
        2018), the model's own terms, ``beta`` (the weight in force at the end
        of the epoch), the same with ``valid_`` when early stopping holds out
        data, and per batch the same under ``"batches"``. Index it like
        ``history_[:, "train_kl"]``.
        """
        return self.net_.history

    @property
    def module_(self):
        """The fitted :class:`torch.nn.Module` (encoder and decoder)."""
        return self.net_.module_

    @property
    def encoder_(self):
        """The fitted encoder, ``x -> (mu, logvar)``."""
        return self.net_.module_.encoder

    @property
    def decoder_(self):
        """The fitted decoder, ``z -> logits (Bernoulli) or mean (Gaussian)``."""
        return self.net_.module_.decoder

    @abstractmethod
    def _make_objective(self, *, likelihood, dataset_size):
        """The :class:`~sklearn_betavae._net.VAEObjective` of this model."""

    def _make_net(self, n_features, likelihood, dataset_size, seed):
        """Build and initialise the skorch net (deterministically, from ``seed``)."""
        device = _resolve_device(self.device)
        image_shape = _image_shape(self.image_shape, n_features)
        with _INIT_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build_vae_module(
                n_features, self.n_components, self.hidden_layer_sizes, image_shape
            )
            objective = self._make_objective(likelihood=likelihood, dataset_size=dataset_size)
            net = self._build_net(module, objective, device, seed)
            net.initialize()
        return net

    def _build_net(self, module, objective, device, seed, **net_params):
        """The skorch net, with the user's callbacks (deep-copied) and early stopping.

        ``net_params`` are extra arguments of ``_net_class`` (FactorVAE's discriminator).
        """
        callbacks = copy.deepcopy(self.callbacks) or []
        if self.early_stopping:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss",
                        patience=self.n_iter_no_change,
                        threshold=self.tol,
                        threshold_mode="abs",
                        load_best=True,
                        sink=print if self.verbose else _silent,
                    ),
                )
            )
        return self._net_class(
            module=module,
            criterion=objective,
            optimizer=torch.optim.Adam,
            # torch's multi-tensor Adam (its default on GPUs): same updates, one
            # call per step instead of a Python loop over the parameters.
            optimizer__foreach=True,
            lr=self.learning_rate,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=HoldoutSplit(self.validation_fraction, seed) if self.early_stopping else None,
            callbacks=callbacks,
            verbose=self.verbose,
            device=device,
            **net_params,
        )

    def _fit(self, X, epochs, continuing):
        """Train on validated X for ``epochs`` epochs, new or continuing."""
        limit_torch_threads_to_dask_worker()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        n_train = X.shape[0]
        if self.early_stopping:
            n_train -= HoldoutSplit(self.validation_fraction, seed).n_valid(X.shape[0])

        if continuing:
            _check_bernoulli_range(X, self.likelihood_)
            net = self.net_
            # The objective holds no state: rebuild it so that hyperparameters changed
            # with set_params (beta, free_bits, ...) apply to the continued training.
            net.criterion_ = self._make_objective(likelihood=self.likelihood_, dataset_size=n_train)
        else:
            self.likelihood_ = self._resolve_likelihood(X)
            net = self._make_net(X.shape[1], self.likelihood_, n_train, seed)
            self._score_seed = seed
            self._sample_dtype = _output_dtype(X.dtype)
            self._n_features_out = self.n_components

        net.seed_generators(seed)
        try:
            net.partial_fit(ArrayDataset(X), epochs=epochs)
        except TrainingDivergedError as exc:
            # The parameters are those of the last finite step: keep them usable.
            self.net_ = net
            self.n_iter_ = len(net.history)
            raise ValueError(str(exc)) from None
        self.net_ = net
        self.n_iter_ = len(net.history)
        return self

    def _resolve_likelihood(self, X):
        """``"auto"``: Bernoulli for data in [0, 1], Gaussian otherwise."""
        if self.likelihood != "auto":
            _check_bernoulli_range(X, self.likelihood)
            return self.likelihood
        if X.dtype == np.bool_ or (X.min() >= 0 and X.max() <= 1):
            return "bernoulli"
        return "gaussian"

    def _decode(self, Z, dtype):
        """Decoder means for codes Z, in batches, as ``dtype``."""
        out = []
        with torch.inference_mode():
            for z in self.net_.iter_inference_batches(Z):
                out.append(decoder_mean(self.net_.module_.decode(z), self.likelihood_).cpu())
        return torch.cat(out).numpy().astype(dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _silent(*args, **kwargs):
    """A ``sink`` for skorch callbacks that prints nothing."""
