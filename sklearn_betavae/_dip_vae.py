"""DIP-VAE (Kumar et al. 2017): the ELBO plus moment matching of the aggregate posterior."""

from numbers import Real

from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseVAE
from ._losses import dip_covariance, dip_regularizer
from ._net import VAEObjective


class _DIPVAEObjective(VAEObjective):
    """``beta(t) * KL + lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2``."""

    def __init__(self, *, lambda_od, lambda_d, dip_type, **kwargs):
        super().__init__(**kwargs)
        self.lambda_od = lambda_od
        self.lambda_d = lambda_d
        self.dip_type = dip_type

    def regularizer(self, *, mu, logvar, kl_per_dim, step, **_):
        beta = self.annealed(1.0, step)
        cov = dip_covariance(mu, logvar, self.dip_type)
        dip = dip_regularizer(cov, self.lambda_od, self.lambda_d)
        return beta * self.kl_term(kl_per_dim) + dip, {"beta": beta, "dip_penalty": dip.detach()}


class DIPVAE(_BaseVAE):
    r"""DIP-VAE: a VAE whose aggregate posterior is pushed to be decorrelated.

    Minimises, per minibatch, the negative of

    .. math::

        \mathcal{L} = \mathbb{E}_{q(z|x)}[\log p(x|z)]
            - \beta(t)\, \mathrm{KL}(q(z|x) \,\|\, \mathcal{N}(0, I))
            - \lambda_{od} \sum_{i \ne j} C_{ij}^2
            - \lambda_d \sum_i (C_{ii} - 1)^2

    (Kumar et al. 2017, eqs. 6-7): the ELBO plus a penalty driving the
    covariance :math:`C` of the aggregate posterior
    :math:`q(z) = \mathbb{E}_{p(x)}[q(z|x)]` towards the identity, the
    covariance of the prior (disentangled inferred priors). ``dip_type``
    chooses :math:`C`, estimated on the minibatch with the biased
    :math:`1/B` normalisation:

    - ``"i"`` (DIP-VAE-I): :math:`C = \mathrm{Cov}_{p(x)}[\mu(x)]`, the
      covariance of the posterior means;
    - ``"ii"`` (DIP-VAE-II): :math:`C = \mathrm{Cov}_{q(z)}[z] =
      \mathbb{E}_{p(x)}[\mathrm{diag}\,\sigma^2(x)] + \mathrm{Cov}_{p(x)}[\mu(x)]`,
      the full covariance of :math:`q(z)`.

    :math:`\beta(t)` is 1 apart from KL annealing (``anneal_steps``); the
    DIP penalty is never annealed.

    Parameters
    ----------
    [shared: n_components]

    lambda_od : float, default=10.0
        Weight :math:`\lambda_{od}` of the squared off-diagonal entries of
        :math:`C`.

    lambda_d : float or None, default=None
        Weight :math:`\lambda_d` of the squared deviations of the diagonal of
        :math:`C` from 1. ``None``: ``10 * lambda_od`` for ``dip_type="i"``
        and ``lambda_od`` for ``dip_type="ii"``, the settings of Kumar et al.
        (2017), Sec. 4.

    dip_type : {"i", "ii"}, default="ii"
        Which covariance is matched, see above.

    anneal_steps : int or float, default=0.3
        KL annealing: the KL weight at the ``t``-th optimisation step
        (``t = 0, 1, ...``) is ``beta(t) = min(1, t / anneal_steps)``, rising
        linearly from 0 to 1 over ``anneal_steps`` steps, then staying. 0
        disables it.
        [shared: anneal_steps_fraction]

    free_bits : float, default=0.0
        Free bits ``lambda`` in nats per latent dimension (Kingma et al. 2016,
        eq. 15) on the KL term, as in :class:`BetaVAE`: it becomes
        ``sum_j max(lambda, KL_j)`` where ``KL_j`` is dimension ``j``'s KL
        averaged over the minibatch first. The DIP penalty is unaffected. 0
        disables it.

    regularizer_scale : float or "auto", default=1.0
    [shared: regularizer_scale]
        Here 1.0: at 64x64, ``"auto"`` collapsed the posterior (every
        dimension) of two seeds in five, which 1.0 did not.

    [shared: supervision_weight]

    [shared: supervision_loss]

    [shared: likelihood]

    [shared: hidden_layer_sizes]

    [shared: image_shape]

    [shared: encoder]

    [shared: decoder]

    [shared: condition_features]

    batch_size : int, default=64
        Minibatch size, also the sample size of the covariance estimate.

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
        Per-epoch record of the training (see :attr:`_BaseVAE.history_`). On
        top of the common entries it holds ``train_dip_penalty``, the weighted
        DIP penalty averaged over the epoch's minibatches, and ``beta``, the
        KL weight in force.

    [shared: net_]

    [shared: module_, encoder_, decoder_]

    See Also
    --------
    BetaVAE : Weights the whole KL term.
    BetaTCVAE : Penalises the total correlation of the KL split.
    FactorVAE : Penalises total correlation estimated by a discriminator.

    References
    ----------
    Kumar, A., Sattigeri, P. and Balakrishnan, A. (2018). Variational
    Inference of Disentangled Latent Concepts from Unlabeled Observations.
    ICLR (arXiv:1711.00848, 2017).

    Kingma, D. P. et al. (2016). Improved Variational Inference with Inverse
    Autoregressive Flow. NeurIPS (free bits).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import DIPVAE
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> vae = DIPVAE(n_components=4, lambda_od=10.0, dip_type="ii", max_epochs=2,
    ...              random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (1797, 4)
    >>> "train_dip_penalty" in vae.history_[-1]
    True
    >>> vae.inverse_transform(Z).shape
    (1797, 64)
    """

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "lambda_od": [Interval(Real, 0, None, closed="left")],
        "lambda_d": [Interval(Real, 0, None, closed="left"), None],
        "dip_type": [StrOptions({"i", "ii"})],
    }

    def __init__(
        self,
        n_components=10,
        *,
        lambda_od=10.0,
        lambda_d=None,
        dip_type="ii",
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
        self.lambda_od = lambda_od
        self.lambda_d = lambda_d
        self.dip_type = dip_type

    def _make_objective(self, **common):
        lambda_d = self.lambda_d
        if lambda_d is None:
            # Kumar et al. (2017), Sec. 4: lambda_d = 10 lambda_od (I), = lambda_od (II).
            lambda_d = 10 * self.lambda_od if self.dip_type == "i" else self.lambda_od
        return _DIPVAEObjective(
            lambda_od=self.lambda_od,
            lambda_d=lambda_d,
            dip_type=self.dip_type,
            **common,
        )
