"""FactorVAE (Kim & Mnih 2018): a total-correlation penalty estimated by a discriminator."""

from numbers import Real

import torch
from sklearn.utils._param_validation import Interval

from ._base import _BaseVAE, _check_layer_sizes, _fused_optimizer_params
from ._losses import discriminator_accuracy, discriminator_loss, discriminator_tc, permute_dims
from ._modules import Discriminator, build_initialized
from ._net import VAENet, VAEObjective

# Adam's (beta1, beta2) for the discriminator, as in Kim & Mnih (2018).
_DISCRIMINATOR_BETAS = (0.5, 0.9)


class _FactorVAEObjective(VAEObjective):
    """``KL + gamma(t) * TC_D(z)``: the ELBO's KL at weight 1, the TC estimate annealed.

    Both terms are the regulariser, scaled alike by ``regularizer_scale``.

    ``forward`` takes the discriminator's logits of the sampled codes as one
    more input (the net computes them), so the objective holds no module of
    its own and stays a pure function of its inputs.
    """

    def __init__(self, *, gamma, **kwargs):
        super().__init__(**kwargs)
        self.gamma = gamma

    def forward(
        self,
        x,
        mu,
        logvar,
        z,
        decoded,
        discriminator_logits,
        step,
        diagnose=False,
        generator=None,
        supervision=None,
        dataset_size=None,
    ):
        loss, logs = super().forward(
            x,
            mu,
            logvar,
            z,
            decoded,
            step,
            diagnose=diagnose,
            generator=generator,
            supervision=supervision,
            dataset_size=dataset_size,
        )
        gamma = self.annealed(self.gamma, step)
        tc = discriminator_tc(discriminator_logits)
        loss = loss + self.scaled(gamma * tc)
        # "loss" keeps its first place in the dict: record_logs checks it for divergence.
        logs.update(loss=loss.detach(), tc_estimate=tc.detach(), gamma=gamma)
        return loss, logs

    def regularizer(self, *, kl_per_dim, **_):
        return self.kl_term(kl_per_dim), {}


class _FactorVAENet(VAENet):
    """:class:`~sklearn_betavae._net.VAENet` with a discriminator trained alongside.

    The discriminator is a registered skorch module (``discriminator_``), so
    skorch moves it to the device, pickles it and re-initialises it with the
    net; it has its own optimizer (``discriminator_optimizer_``). Each
    training step is two updates (Kim & Mnih 2018, Algorithm 2):

    1. :meth:`vae_step`: the VAE loss, with ``D(z)`` evaluated at detached
       discriminator parameters (gradients reach the encoder through ``z``,
       never the discriminator), backward, step of ``optimizer_``, which
       holds the VAE's parameters only;
    2. :meth:`discriminator_step`: cross-entropy of ``D`` on the batch's
       detached codes against the same codes permuted per dimension, backward,
       step of ``discriminator_optimizer_``, which holds ``D``'s parameters only.

    Parameters
    ----------
    *args, **kwargs
        Those of :class:`~sklearn_betavae._net.VAENet`; ``discriminator__*``
        and ``discriminator_optimizer__*`` arguments go to the discriminator's
        constructor and optimizer, skorch-style.
    discriminator : torch.nn.Module or type of torch.nn.Module
        The discriminator (an instance, or a class built in
        :meth:`initialize_module`).
    discriminator_optimizer : type of torch.optim.Optimizer, default=Adam
        The discriminator's optimizer class, built in :meth:`initialize_optimizer`.
    """

    def __init__(self, *args, discriminator, discriminator_optimizer=torch.optim.Adam, **kwargs):
        # Passed on as kwargs: skorch validates them once the prefixes are registered.
        super().__init__(
            *args,
            discriminator=discriminator,
            discriminator_optimizer=discriminator_optimizer,
            **kwargs,
        )

    def initialize_module(self):
        super().initialize_module()
        self.discriminator_ = self.initialized_instance(
            self.discriminator, self.get_params_for("discriminator")
        )
        return self

    def initialize_optimizer(self, *args, **kwargs):
        # One optimizer per player, with disjoint parameters.
        args, kwargs = self.get_params_for_optimizer("optimizer", self.module_.named_parameters())
        self.optimizer_ = self.optimizer(*args, **kwargs)
        args, kwargs = self.get_params_for_optimizer(
            "discriminator_optimizer", self.discriminator_.named_parameters()
        )
        self.discriminator_optimizer_ = self.discriminator_optimizer(*args, **kwargs)
        return self

    def infer(self, x, **fit_params):
        """``(x, mu, logvar, z, decoded, logits)``: the VAE's outputs and ``D(z)``."""
        x, mu, logvar, z, decoded = super().infer(x, **fit_params)
        return x, mu, logvar, z, decoded, self._frozen_discriminator(z)

    def _frozen_discriminator(self, z):
        """Logits ``D(z)`` differentiable in ``z`` only: the parameters enter detached."""
        params = {name: p.detach() for name, p in self.discriminator_.named_parameters()}
        with self.autocast():
            logits = torch.func.functional_call(self.discriminator_, params, (z,))
        return logits.float()

    def initialize(self):
        super().initialize()
        # The discriminator's loss scale is its own (fp16 on CUDA only).
        self.discriminator_grad_scaler_ = (
            torch.amp.GradScaler(torch.device(self.device).type) if self.precision == "fp16" else None
        )
        return self

    def train_step(self, batch, **fit_params):
        step = self.vae_step(batch, **fit_params)
        self.discriminator_step(step["y_pred"][3].detach())
        self.n_steps_ += 1
        return step

    def discriminator_step(self, z):
        """Update the discriminator on codes ``z`` (detached) and their permutation.

        Kim & Mnih permute the codes of a second minibatch; we permute those of
        the same (detached) batch, the usual simplification, which costs no
        second encoder pass. The permutation draws from the net's noise
        generator, so training stays deterministic for a seed. As in
        :meth:`vae_step`, the loss and the gradients are checked for
        finiteness in one device sync before the optimizer steps.
        """
        self.discriminator_optimizer_.zero_grad()
        with self.autocast():
            logits_real = self.discriminator_(z).float()
            permuted = permute_dims(z, generator=self._noise_generator)
            logits_permuted = self.discriminator_(permuted).float()
        loss = discriminator_loss(logits_real, logits_permuted)
        self.backward(loss, self.discriminator_grad_scaler_)
        logs = {
            "discriminator_loss": loss.detach(),
            "discriminator_accuracy": discriminator_accuracy(logits_real, logits_permuted),
        }
        parameters = list(self.discriminator_.parameters())
        optimizer, scaler = self.discriminator_optimizer_, self.discriminator_grad_scaler_
        self.check_gradients(optimizer, parameters, logs, scaler)
        self.apply_gradients(optimizer, parameters, scaler)


class FactorVAE(_BaseVAE):
    r"""FactorVAE: a VAE penalising total correlation estimated by a discriminator.

    Minimises, per minibatch, the negative of

    .. math::

        \mathcal{L} = \mathbb{E}_{q(z|x)}[\log p(x|z)]
                      - \mathrm{KL}(q(z|x) \,\|\, \mathcal{N}(0, I))
                      - \gamma(t)\, \mathbb{E}_{q(z)}\left[
                        \log \frac{D(z)}{1 - D(z)} \right]

    (Kim & Mnih 2018, eq. 2-3): the ELBO plus ``gamma`` times a density-ratio
    estimate of the total correlation
    :math:`\mathrm{TC}(z) = \mathrm{KL}(q(z) \,\|\, \prod_j q(z_j))`. The
    discriminator :math:`D` is an MLP trained alongside the VAE, with its own
    Adam optimizer, to tell codes :math:`z \sim q(z)` from codes whose
    dimensions were permuted independently across the minibatch (samples of
    :math:`\prod_j q(z_j)`, Algorithm 1). Each training step updates the VAE
    (the discriminator's parameters held fixed), then the discriminator (on
    the detached codes of the same minibatch, permuted; the paper uses a
    second minibatch).

    Parameters
    ----------
    [shared: n_components]

    gamma : float, default=30.0
        Weight of the total-correlation estimate. Larger values make the
        code dimensions more independent at the cost of reconstruction;
        disentanglement studies use values between about 5 and 100 (Kim &
        Mnih 2018; Locatello et al. 2019). On generated sprites ``gamma=30``
        scored clearly higher than ``gamma=6.4`` on the FactorVAE score and
        MIG (see the disentanglement benchmark in the documentation).
        ``gamma=0`` trains a plain VAE (and a discriminator that does not
        influence it) when ``regularizer_scale`` is 1.

    discriminator_hidden_layer_sizes : tuple of int, default=(256,) * 4
        Widths of the discriminator's hidden layers (LeakyReLU(0.2) between
        them). Kim & Mnih (2018) use six layers of 1000 units,
        ``(1000,) * 6``: on generated sprites that discriminator made fits
        three times as long for the same FactorVAE score and MIG within the
        spread over seeds (see the disentanglement benchmark in the
        documentation).

    discriminator_learning_rate : float, default=1e-4
        Learning rate of the discriminator's Adam optimizer (betas (0.5, 0.9)
        as in Kim & Mnih 2018).

    anneal_steps : int or float, default=0.3
        Annealing of the total-correlation weight:
        ``gamma(t) = min(1, t / anneal_steps) * gamma`` for the ``t``-th
        optimisation step, so the penalty rises linearly from 0 while the
        discriminator learns; the KL weight stays 1. 0 disables it.
        [shared: anneal_steps_fraction]

    free_bits : float, default=0.0
        Free bits ``lambda`` in nats per latent dimension (Kingma et al. 2016,
        eq. 15), applied to the KL term: ``sum_j max(lambda, KL_j)`` with
        ``KL_j`` averaged over the minibatch first. 0 disables it.

    regularizer_scale : float or "auto", default=1.0
    [shared: regularizer_scale]
        Here 1.0: at 64x64, ``"auto"`` did not raise MIG (0.107 against 0.106)
        and lowered the FactorVAE score (0.650 against 0.743).

    [shared: supervision_weight]

    [shared: supervision_loss]

    [shared: likelihood]

    [shared: hidden_layer_sizes]

    [shared: image_shape]

    [shared: encoder]

    [shared: decoder]

    [shared: condition_features]

    batch_size : int, default=64
        Minibatch size (of the VAE and of the discriminator).

    [shared: labelled_batch_size]

    learning_rate : float, default=1e-3
        The optimizer's learning rate for the encoder and decoder.

    [shared: optimizer]

    [shared: weight_decay]

    [shared: clip_grad_norm]

    [shared: precision]

    [shared: max_epochs]

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when the
        validation loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs, restoring the best encoder and decoder weights (the
        discriminator keeps its last state). The discriminator is only
        evaluated on the held-out data, never trained on it.

    [shared: validation_fraction]

    [shared: n_iter_no_change]

    [shared: tol]

    warm_start : bool, default=False
        When fitted, ``fit`` continues training the current model (VAE and
        discriminator) instead of starting anew.

    [shared: device]

    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation (VAE and discriminator), the
        shuffling, the reparameterisation noise and the permutations through
        private generators: the same seed on the same data gives identical
        results on the CPU.

    [shared: verbose]

    callbacks : list of skorch callbacks or None, default=None
        Extra skorch callbacks (or ``(name, callback)`` pairs), deep-copied at
        each fit. ``on_grad_computed`` sees the VAE's parameters.

    Attributes
    ----------
    [shared: regularizer_scale_]

    [shared: precision_]

    [shared: likelihood_]

    [shared: condition_indices_]

    [shared: modelled_indices_]

    [shared: n_features_in_]

    [shared: feature_names_in_]

    [shared: n_iter_]

    [shared: n_samples_seen_]

    history_ : skorch.history.History
        Per-epoch record of the training (see :attr:`_BaseVAE.history_`),
        with, in addition, ``train_tc_estimate`` (the discriminator's TC
        estimate :math:`\mathbb{E}[\log D / (1 - D)]`, without ``gamma``),
        ``train_discriminator_loss`` and ``train_discriminator_accuracy`` (on
        the codes of each minibatch and their permutation, before the
        discriminator's update), ``train_gamma`` (the epoch's mean annealed
        weight) and, with early stopping, ``valid_tc_estimate``.

    [shared: net_]

    [shared: module_, encoder_, decoder_]

    discriminator_ : torch.nn.Module
        The fitted discriminator, ``z -> logits`` (column 0: "joint sample").

    See Also
    --------
    BetaVAE : Weights the whole KL term instead.
    BetaTCVAE : Penalises the total correlation with a minibatch estimator.
    DIPVAE : Matches moments of the aggregate posterior.

    References
    ----------
    Kim, H. and Mnih, A. (2018). Disentangling by Factorising. ICML.

    Locatello, F. et al. (2019). Challenging Common Assumptions in the
    Unsupervised Learning of Disentangled Representations. ICML.

    Kingma, D. P. et al. (2016). Improved Variational Inference with Inverse
    Autoregressive Flow. NeurIPS (free bits).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import FactorVAE
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> vae = FactorVAE(n_components=4, gamma=10.0, discriminator_hidden_layer_sizes=(64, 64),
    ...                 max_epochs=2, random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (1797, 4)
    >>> accuracy = vae.history_[-1, "train_discriminator_accuracy"]
    >>> bool(0.0 <= accuracy <= 1.0)
    True
    """

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "gamma": [Interval(Real, 0, None, closed="left")],
        "discriminator_hidden_layer_sizes": ["array-like"],
        "discriminator_learning_rate": [Interval(Real, 0, None, closed="neither")],
    }

    _net_class = _FactorVAENet
    _architecture_params = (*_BaseVAE._architecture_params, "discriminator_hidden_layer_sizes")

    def __init__(
        self,
        n_components=10,
        *,
        gamma=30.0,
        discriminator_hidden_layer_sizes=(256,) * 4,
        discriminator_learning_rate=1e-4,
        anneal_steps=0.3,
        free_bits=0.0,
        regularizer_scale=1.0,
        supervision_weight=0.0,
        supervision_loss="xent",
        likelihood="auto",
        hidden_layer_sizes=None,
        image_shape=None,
        encoder=None,
        decoder=None,
        condition_features=None,
        batch_size=64,
        labelled_batch_size=None,
        learning_rate=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        clip_grad_norm=None,
        precision="auto",
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
        super().__init__(
            n_components=n_components,
            anneal_steps=anneal_steps,
            free_bits=free_bits,
            regularizer_scale=regularizer_scale,
            supervision_weight=supervision_weight,
            supervision_loss=supervision_loss,
            likelihood=likelihood,
            hidden_layer_sizes=hidden_layer_sizes,
            image_shape=image_shape,
            encoder=encoder,
            decoder=decoder,
            condition_features=condition_features,
            batch_size=batch_size,
            labelled_batch_size=labelled_batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            weight_decay=weight_decay,
            clip_grad_norm=clip_grad_norm,
            precision=precision,
            max_epochs=max_epochs,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            warm_start=warm_start,
            device=device,
            random_state=random_state,
            verbose=verbose,
            callbacks=callbacks,
        )
        self.gamma = gamma
        self.discriminator_hidden_layer_sizes = discriminator_hidden_layer_sizes
        self.discriminator_learning_rate = discriminator_learning_rate

    @property
    def discriminator_(self):
        """The fitted discriminator, ``z -> logits`` (column 0: joint, 1: permuted)."""
        return self.net_.discriminator_

    def _make_objective(self, **common):
        return _FactorVAEObjective(
            gamma=self.gamma,
            **common,
        )

    def _continue_with_current_params(self, net, seed):
        super()._continue_with_current_params(net, seed)
        for group in net.discriminator_optimizer_.param_groups:
            group["lr"] = self.discriminator_learning_rate

    def _build_net(self, module, objective, device, seed, generator, **net_params):
        # Drawn from the generator _make_net gives for further modules.
        hidden = _check_layer_sizes(
            self.discriminator_hidden_layer_sizes, "discriminator_hidden_layer_sizes"
        )
        discriminator = build_initialized(
            lambda: Discriminator(self.n_components, hidden), generator
        )
        return super()._build_net(
            module,
            objective,
            device,
            seed,
            generator,
            discriminator=discriminator,
            discriminator_optimizer__lr=self.discriminator_learning_rate,
            discriminator_optimizer__betas=_DISCRIMINATOR_BETAS,
            **_fused_optimizer_params("discriminator_optimizer"),
            **net_params,
        )
