"""beta-TCVAE (Chen et al. 2018): the KL split into MI, TC and dimension-wise KL, reweighted."""

from numbers import Real

from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseVAE
from ._losses import kl_decomposition
from ._net import VAEObjective


class _BetaTCVAEObjective(VAEObjective):
    """``alpha * MI + beta(t) * TC + gamma * dimension-wise KL``, estimated on the minibatch."""

    def __init__(self, *, alpha, beta, gamma, tc_estimator, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.tc_estimator = tc_estimator

    def regularizer(self, *, mu, logvar, z, step, generator, dataset_size, **_):
        beta = self.annealed(self.beta, step)
        parts = kl_decomposition(z, mu, logvar, dataset_size, self.tc_estimator,
                                 generator=generator)
        mi, tc, dwkl = parts["mi"].mean(), parts["tc"].mean(), parts["dwkl"].mean()
        penalty = self.alpha * mi + beta * tc + self.gamma * dwkl
        # Prefixed: "mi", "tc", "dwkl" are VAEObjective's once-per-epoch MSS diagnostic.
        logs = {
            "beta": beta,
            "tcvae_mi": mi.detach(),
            "tcvae_tc": tc.detach(),
            "tcvae_dwkl": dwkl.detach(),
        }
        return penalty, logs


class BetaTCVAE(_BaseVAE):
    r"""beta-TCVAE: a VAE penalising the total correlation of its code.

    Splits the KL term of the ELBO, averaged over the data, into three parts
    (Chen et al. 2018, eq. 2) and weights each one separately:

    .. math::

        \mathcal{L} = \mathbb{E}_{q(z|x)}[\log p(x|z)]
            - \alpha\, \underbrace{I_q(x; z)}_{\text{index-code MI}}
            - \beta(t)\, \underbrace{\mathrm{KL}\big(q(z) \,\|\, \textstyle\prod_j q(z_j)\big)}_{\text{total correlation}}
            - \gamma \sum_j \underbrace{\mathrm{KL}\big(q(z_j) \,\|\, p(z_j)\big)}_{\text{dimension-wise KL}}

    (Chen et al. 2018, eq. 4), where :math:`q(z) = \mathbb{E}_{p(x)}[q(z|x)]` is
    the aggregate posterior and :math:`q(z_j)` its marginals. Only the total
    correlation (TC), the dependence between latent dimensions, is penalised
    harder than in a plain VAE by the default ``alpha = gamma = 1``,
    ``beta > 1``. With ``alpha = beta = gamma = 1`` the three terms add up to
    :math:`\log q(z|x) - \log p(z)` sample by sample, whose expectation is the
    KL of the ELBO: the objective is then the plain VAE's in expectation
    (with ``regularizer_scale`` 1, as it is up to 1,024 modelled features).

    The terms are estimated on each minibatch from one reparameterised sample
    :math:`z_i \sim q(z|x_i)` per point, with
    :math:`q(z_i) \approx \sum_j w_{ij}\, q(z_i | x_j)` and the same for each
    marginal (see :func:`~sklearn_betavae._losses.kl_decomposition`):

    - ``"mss"``, minibatch stratified sampling (Chen et al. 2018, Appendix
      C.2): weight :math:`1/N` on the point :math:`z_i` came from, the
      stratified weight :math:`(N - B + 1) / (N (B - 1))` on one other point,
      drawn at random for every minibatch, and :math:`1/(B - 1)` on the rest.
      Every row of weights sums to 1 and the estimate of :math:`q(z_i)` is
      unbiased (the random partner matters: a fixed neighbour such as
      :math:`i + 1` is biased when the minibatch is ordered like the data).
    - ``"mws"``, minibatch weighted sampling (Sec. 4.1): the plain minibatch
      average, weights :math:`1/B`, which over-weights the point :math:`z_i`
      came from, so its estimate of :math:`q(z_i)` is biased upwards (not
      unbiased). The paper prints the weight as :math:`1/(BN)`; that density
      integrates to :math:`1/N` and adds the constant :math:`(D - 1)\log N` to
      the TC. Constants change no gradient, but here the ``log B`` terms are
      kept and the ``log N`` ones are normalised away, so the logged TC is on
      the scale of a TC.

    The logarithm of an estimated density is biased for finite :math:`B`
    (Jensen), so larger minibatches estimate the terms better. Both cost
    :math:`O(B^2 D)` per step; :math:`N` is the number of training samples
    and :math:`D` the number of components.

    Parameters
    ----------
    [shared: n_components]

    alpha : float, default=1.0
        Weight of the index-code mutual information :math:`I_q(x; z)`.

    beta : float, default=6.0
        Weight of the total correlation, the disentangling pressure (Chen et
        al. use values between 1 and 10). Annealed by ``anneal_steps``.

    gamma : float, default=1.0
        Weight of the dimension-wise KL :math:`\sum_j \mathrm{KL}(q(z_j) \| p(z_j))`.

    tc_estimator : {"mss", "mws"}, default="mss"
        Minibatch estimator of :math:`q(z)`: stratified ("mss") or weighted
        ("mws") sampling, see above.

    anneal_steps : int or float, default=0.3
        TC annealing: the TC weight at the ``t``-th optimisation step
        (``t = 0, 1, ...``) is ``beta(t) = min(1, t / anneal_steps) * beta``,
        rising linearly from 0 to ``beta``, then staying. ``alpha`` and
        ``gamma`` are not annealed. 0 disables it.
        [shared: anneal_steps_fraction]

    free_bits : float, default=0.0
        Must be 0: free bits are not supported by this model and a positive
        value raises a ``ValueError`` at fit. Free bits (Kingma et al. 2016)
        exempt each dimension's first ``lambda`` nats of KL to prevent
        posterior collapse; here the term that drives collapse is the
        index-code MI, which does not split per dimension, and clamping the
        dimension-wise KL alone would not protect a dimension from collapsing.
        Lower ``alpha`` to ease the pressure on the information in the code.
        (Kept for a uniform interface with the other models.)

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
        Minibatch size ``B``. The estimates of the MI, TC and dimension-wise
        KL improve with larger minibatches and cost :math:`O(B^2)` per step.

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
        top of the common entries it holds the terms of this objective,
        averaged over the epoch's minibatches with ``tc_estimator``:
        ``train_tcvae_mi``, ``train_tcvae_tc``, ``train_tcvae_dwkl``, and
        ``beta``, the TC weight in force. (``train_mi``, ``train_tc`` and
        ``train_dwkl`` are the common once-per-epoch MSS diagnostic.)

    [shared: net_]

    [shared: module_, encoder_, decoder_]

    See Also
    --------
    BetaVAE : Weights the whole KL term.
    FactorVAE : Penalises total correlation estimated by a discriminator.
    DIPVAE : Matches moments of the aggregate posterior.

    References
    ----------
    Chen, R. T. Q., Li, X., Grosse, R. and Duvenaud, D. (2018). Isolating
    Sources of Disentanglement in Variational Autoencoders. NeurIPS.

    Kingma, D. P. et al. (2016). Improved Variational Inference with Inverse
    Autoregressive Flow. NeurIPS (free bits).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaTCVAE
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> vae = BetaTCVAE(n_components=4, beta=6.0, max_epochs=2, random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (1797, 4)
    >>> vae.history_[-1, "beta"]
    6.0
    >>> vae.inverse_transform(Z).shape
    (1797, 64)
    """

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "tc_estimator": [StrOptions({"mss", "mws"})],
    }

    def __init__(
        self,
        n_components=10,
        *,
        alpha=1.0,
        beta=6.0,
        gamma=1.0,
        tc_estimator="mss",
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
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.tc_estimator = tc_estimator

    def _make_objective(self, **common):
        if self.free_bits > 0:
            raise ValueError(
                f"BetaTCVAE does not support free bits (got free_bits={self.free_bits}): "
                "the index-code MI that drives posterior collapse does not split per "
                "dimension. Use free_bits=0 and lower alpha instead."
            )
        return _BetaTCVAEObjective(
            alpha=self.alpha,
            beta=self.beta,
            gamma=self.gamma,
            tc_estimator=self.tc_estimator,
            **common,
        )
