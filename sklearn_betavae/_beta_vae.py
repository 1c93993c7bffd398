"""beta-VAE (Higgins et al. 2017), with the capacity objective of Burgess et al. (2018)."""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from ._base import _BaseVAE
from ._net import VAEObjective
from ._schedules import linear_ramp


class _BetaVAEObjective(VAEObjective):
    """``beta(t) * KL`` or, with a capacity, ``beta(t) * |KL - C(t)|``."""

    def __init__(self, *, beta, capacity, capacity_steps, **kwargs):
        super().__init__(**kwargs)
        self.beta = beta
        self.capacity = capacity
        self.capacity_steps = capacity_steps

    def regularizer(self, *, kl_per_dim, step, **_):
        beta = self.annealed(self.beta, step)
        kl = self.kl_term(kl_per_dim)
        if self.capacity is None:
            return beta * kl, {"beta": beta}
        capacity = linear_ramp(step, self.capacity_steps, self.capacity)
        return beta * (kl - capacity).abs(), {"beta": beta, "capacity": capacity}


class BetaVAE(_BaseVAE):
    r"""beta-VAE: a variational autoencoder with a weighted KL term.

    Minimises, per minibatch, the negative of

    .. math::

        \mathcal{L} = \mathbb{E}_{q(z|x)}[\log p(x|z)]
                      - \beta(t)\, \mathrm{KL}(q(z|x) \,\|\, \mathcal{N}(0, I))

    (Higgins et al. 2017, eq. 4) with a reparameterised Gaussian posterior
    :math:`q(z|x) = \mathcal{N}(\mu(x), \mathrm{diag}\,\sigma^2(x))`.
    ``beta=1`` is the plain VAE of Kingma & Welling (2014) (on inputs of more
    than 1,024 modelled features, with ``regularizer_scale=1.0``). With ``capacity``
    set, the KL term becomes :math:`\beta(t)\,|\mathrm{KL} - C(t)|` with
    :math:`C(t) = \min(1, t / T_C)\, C_{max}` (Burgess et al. 2018, eq. 8),
    ``beta`` playing the role of their :math:`\gamma`.

    Parameters
    ----------
    [shared: n_components]

    beta : float, default=1.0
        Weight of the KL term. Larger values compress harder (lower rate,
        higher distortion); values above 1 encourage disentanglement.

    capacity : float or None, default=None
        Target KL ``C_max`` in nats of the capacity objective; ``None`` uses
        the plain beta-VAE objective.

    capacity_steps : int, default=0
        Optimisation steps ``T_C`` over which the capacity rises linearly from
        0 to ``capacity`` (0: the full capacity from the start).

    anneal_steps : int or float, default=0.3
        KL annealing: ``beta(t) = min(1, t / anneal_steps) * beta`` for the
        ``t``-th optimisation step (``t = 0, 1, ...``), so beta rises linearly
        from 0 to ``beta`` over ``anneal_steps`` steps, then stays. 0 disables it.
        [shared: anneal_steps_fraction]

    free_bits : float, default=0.0
        Free bits ``lambda`` in nats per latent dimension (Kingma et al. 2016,
        eq. 15): the KL term becomes ``sum_j max(lambda, KL_j)`` where ``KL_j``
        is dimension ``j``'s KL **averaged over the minibatch first**, so no
        dimension is pushed below ``lambda`` nats. 0 disables it.

    regularizer_scale : float or "auto", default="auto"
    [shared: regularizer_scale]

    [shared: supervision_weight]

    [shared: supervision_loss]

    [shared: likelihood]

    [shared: hidden_layer_sizes]

    [shared: image_shape]

    [shared: encoder]

    [shared: decoder]

    [shared: condition_features]

    batch_size : int, default=64
        Minibatch size.

    [shared: labelled_batch_size]

    learning_rate : float, default=1e-3
        The optimizer's learning rate.

    [shared: optimizer]

    [shared: weight_decay]

    [shared: clip_grad_norm]

    [shared: precision]

    [shared: max_epochs]

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when the
        validation loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs, restoring the best weights.

    [shared: validation_fraction]

    [shared: n_iter_no_change]

    [shared: tol]

    warm_start : bool, default=False
        When fitted, ``fit`` continues training the current model instead of
        starting anew.

    [shared: device]

    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling and the
        reparameterisation noise through private generators: the same seed on
        the same data gives identical results on the CPU, and the global
        torch and numpy random states are left alone.

    [shared: verbose]

    callbacks : list of skorch callbacks or None, default=None
        Extra skorch callbacks (or ``(name, callback)`` pairs), deep-copied at
        each fit.

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
        Per-epoch record of the training (see :attr:`_BaseVAE.history_`); with
        ``capacity`` set, ``train_capacity`` is the epoch's mean target KL ``C`` (it
        grows during training).

    [shared: net_]

    [shared: module_, encoder_, decoder_]

    See Also
    --------
    BetaTCVAE : Penalises only the total correlation of the KL split.
    FactorVAE : Penalises total correlation estimated by a discriminator.
    DIPVAE : Matches moments of the aggregate posterior.
    sklearn.decomposition.FactorAnalysis : The linear Gaussian latent model.

    References
    ----------
    Higgins, I. et al. (2017). beta-VAE: Learning Basic Visual Concepts with a
    Constrained Variational Framework. ICLR.

    Burgess, C. P. et al. (2018). Understanding disentangling in beta-VAE.
    arXiv:1804.03599.

    Kingma, D. P. et al. (2016). Improved Variational Inference with Inverse
    Autoregressive Flow. NeurIPS (free bits).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> vae = BetaVAE(n_components=4, beta=2.0, max_epochs=2, random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (1797, 4)
    >>> vae.likelihood_
    'bernoulli'
    >>> vae.inverse_transform(Z).shape
    (1797, 64)
    """

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "beta": [Interval(Real, 0, None, closed="left")],
        "capacity": [Interval(Real, 0, None, closed="left"), None],
        "capacity_steps": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_components=10,
        *,
        beta=1.0,
        capacity=None,
        capacity_steps=0,
        anneal_steps=0.3,
        free_bits=0.0,
        regularizer_scale="auto",
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
        self.beta = beta
        self.capacity = capacity
        self.capacity_steps = capacity_steps

    def _make_objective(self, **common):
        return _BetaVAEObjective(
            beta=self.beta,
            capacity=self.capacity,
            capacity_steps=self.capacity_steps,
            **common,
        )
