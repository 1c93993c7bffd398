"""Figures for fitted VAEs: latent traversals, reconstructions, training curves, rate-distortion.

Optional: needs matplotlib (``pip install sklearn-betavae[plotting]``). The
functions draw on a new figure (or the ``fig`` / ``ax`` passed) and return it,
without calling ``show``.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

try:
    import matplotlib.pyplot as plt
except ImportError as exc:  # matplotlib is an optional dependency
    raise ImportError(
        "sklearn_betavae.plotting requires matplotlib. Install it with "
        "`pip install sklearn-betavae[plotting]` (or `pip install matplotlib`)."
    ) from exc

__all__ = [
    "plot_latent_traversals",
    "plot_rate_distortion",
    "plot_reconstructions",
    "plot_training_history",
]


def _resolve_image_shape(estimator, image_shape, n_features):
    """``(height, width)`` or ``(height, width, 3)`` to display a row of X, or None (lines)."""
    shape = image_shape if image_shape is not None else getattr(estimator, "image_shape", None)
    if shape is None:
        return None
    given = shape = tuple(int(s) for s in shape)
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) == 3 and shape[0] == 3:
        shape = (shape[1], shape[2], 3)  # channels last for imshow, transposed in _draw
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3):
        raise ValueError(
            f"image_shape must be (height, width), (1, height, width) or (3, height, width); "
            f"got {given!r}."
        )
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"image_shape={given!r} holds {int(np.prod(shape))} values but the data have "
            f"{n_features} features."
        )
    return shape


def _modelled_columns(estimator, rows):
    """The modelled columns of rows in X's layout: condition columns are not drawn."""
    modelled = getattr(estimator, "modelled_indices_", None)
    if modelled is None or len(modelled) == rows.shape[1]:
        return rows
    return rows[:, modelled]


def _draw(ax, row, image_shape, *, cmap, limits):
    """Draw one sample on ``ax``: an image, or a line over the features.

    ``limits`` (vmin, vmax) is shared by all samples of a figure, so that
    their intensities compare.
    """
    if image_shape is None:
        ax.plot(np.arange(row.shape[0]), row)
        ax.set_ylim(*limits)
    elif len(image_shape) == 3:
        # Rows of X are (channels, height, width) flattened: move channels last.
        image = row.reshape(3, *image_shape[:2]).transpose(1, 2, 0)
        ax.imshow(np.clip((image - limits[0]) / (limits[1] - limits[0]), 0, 1))
    else:
        ax.imshow(row.reshape(image_shape), cmap=cmap, vmin=limits[0], vmax=limits[1])
    ax.set_xticks([])
    ax.set_yticks([])


def _limits(*arrays):
    """Common (vmin, vmax) of arrays, widened when they are constant."""
    low = min(float(np.min(a)) for a in arrays)
    high = max(float(np.max(a)) for a in arrays)
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _last_kl_per_dim(estimator):
    """KL per latent dimension at the last epoch, from ``history_``, or None."""
    try:
        return np.asarray(estimator.history_[-1, "train_kl_per_dim"], dtype=float)
    except (AttributeError, KeyError, IndexError):
        return None


def _new_figure(fig, figsize):
    if fig is None:
        return plt.figure(figsize=figsize, layout="constrained")
    fig.clear()
    return fig


def plot_latent_traversals(
    estimator,
    x,
    *,
    dimensions=None,
    n_steps=7,
    limit=3.0,
    sort_by_kl=True,
    image_shape=None,
    cmap="gray",
    fig=None,
):
    """Decode sweeps of each latent dimension around the code of one sample.

    Row ``i`` shows one latent dimension ``d``: the code of ``x`` (its
    posterior mean) with ``z_d`` replaced by ``n_steps`` values evenly spaced
    from ``-limit`` to ``+limit`` (in units of the prior's standard deviation),
    decoded to the mean of ``p(x | z)``. In a disentangled model each row
    changes one factor of variation; a row that does not change at all is a
    collapsed (inactive) dimension.

    Parameters
    ----------
    estimator : fitted VAE estimator
        Model with ``transform``, ``inverse_transform`` and ``n_components``,
        e.g. :class:`~sklearn_betavae.BetaVAE`.
    x : array-like of shape (n_features,) or (1, n_features)
        The sample whose code the traversals start from.
    dimensions : int, array-like of int or None, default=None
        Latent dimensions to traverse, one row each. ``None``: all of them;
        an integer ``k``: the first ``k`` after sorting (the ``k`` most
        informative with ``sort_by_kl=True``); a list: those dimensions.
    n_steps : int, default=7
        Number of values per dimension (columns).
    limit : float, default=3.0
        The sweep runs from ``-limit`` to ``+limit``.
    sort_by_kl : bool, default=True
        Order the rows by decreasing KL divergence of each dimension at the
        last training epoch (``history_[-1, "train_kl_per_dim"]``), so that
        the dimensions carrying the most information come first. Ignored when
        the estimator has no such history.
    image_shape : tuple of int or None, default=None
        ``(height, width)``, ``(1, height, width)`` or ``(3, height, width)``
        to display samples as images. ``None`` uses ``estimator.image_shape``;
        if that is None too, each decoded sample is drawn as a line over its
        features.
    cmap : str or Colormap, default="gray"
        Colormap of single-channel images.
    fig : matplotlib Figure or None, default=None
        Figure to draw on (cleared first); ``None`` creates one.

    Returns
    -------
    fig : matplotlib Figure
        ``len(dimensions) * n_steps`` axes, row by row. Each row's label names
        the dimension and its KL in nats.

    See Also
    --------
    plot_reconstructions : Samples next to their reconstructions.

    References
    ----------
    Higgins, I. et al. (2017). beta-VAE: Learning Basic Visual Concepts with a
    Constrained Variational Framework. ICLR (Figures 1, 2 and 7).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.plotting import plot_latent_traversals
    >>> X = load_digits().data[:200] / 16
    >>> vae = BetaVAE(n_components=3, max_epochs=2, random_state=0).fit(X)
    >>> fig = plot_latent_traversals(vae, X[0], n_steps=5, image_shape=(8, 8))
    >>> len(fig.axes)
    15
    """
    check_is_fitted(estimator)
    x = check_array(np.reshape(np.asarray(x), (1, -1)), input_name="x")
    if not isinstance(n_steps, Integral) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")
    if not isinstance(limit, Real) or limit <= 0:
        raise ValueError(f"limit must be a positive number, got {limit!r}.")
    n_components = estimator.n_components
    kl = _last_kl_per_dim(estimator)
    order = np.arange(n_components)
    if sort_by_kl and kl is not None:
        order = np.argsort(-kl, kind="stable")
    if dimensions is None:
        dims = order
    elif isinstance(dimensions, Integral):
        if not 1 <= dimensions <= n_components:
            raise ValueError(
                f"dimensions={dimensions} must be between 1 and n_components={n_components}."
            )
        dims = order[:dimensions]
    else:
        dims = np.asarray(dimensions, dtype=int).ravel()
        if dims.size == 0 or dims.min() < 0 or dims.max() >= n_components:
            raise ValueError(
                f"dimensions must be indices in [0, {n_components}), got {dimensions!r}."
            )
        if sort_by_kl and kl is not None:
            dims = dims[np.argsort(-kl[dims], kind="stable")]

    code = np.asarray(estimator.transform(x), dtype=float)[0]
    values = np.linspace(-limit, limit, n_steps)
    codes = np.tile(code, (len(dims) * n_steps, 1))
    for i, d in enumerate(dims):
        codes[i * n_steps : (i + 1) * n_steps, d] = values
    decoded = _modelled_columns(estimator, np.asarray(estimator.inverse_transform(codes)))
    shape = _resolve_image_shape(estimator, image_shape, decoded.shape[1])
    limits = _limits(decoded)

    fig = _new_figure(fig, (1.1 * n_steps + 0.6, 1.1 * len(dims) + 0.4))
    axes = fig.subplots(len(dims), n_steps, squeeze=False)
    for i, d in enumerate(dims):
        for j in range(n_steps):
            ax = axes[i, j]
            _draw(ax, decoded[i * n_steps + j], shape, cmap=cmap, limits=limits)
            if i == 0:
                ax.set_title(f"{values[j]:+.1f}", fontsize="small")
        label = f"z{d}" if kl is None else f"z{d}\nKL {kl[d]:.2f}"
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize="small")
    return fig


def plot_reconstructions(estimator, X, *, n_images=8, image_shape=None, cmap="gray", fig=None):
    """Show samples (top row) above their reconstructions (bottom row).

    The reconstruction of ``x`` is the decoder mean at the posterior mean,
    ``inverse_transform(transform(x))``.

    Parameters
    ----------
    estimator : fitted VAE estimator
        Model with ``transform`` and ``inverse_transform``.
    X : array-like of shape (n_samples, n_features)
        Samples; the first ``n_images`` are shown.
    n_images : int, default=8
        Number of samples (columns); at most ``n_samples``.
    image_shape : tuple of int or None, default=None
        As in :func:`plot_latent_traversals`: ``None`` uses
        ``estimator.image_shape``, and line plots when that is None too.
    cmap : str or Colormap, default="gray"
        Colormap of single-channel images.
    fig : matplotlib Figure or None, default=None
        Figure to draw on (cleared first); ``None`` creates one.

    Returns
    -------
    fig : matplotlib Figure
        ``2 * n_images`` axes: the originals, then the reconstructions.

    See Also
    --------
    plot_latent_traversals : What each latent dimension decodes to.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.plotting import plot_reconstructions
    >>> X = load_digits().data[:200] / 16
    >>> vae = BetaVAE(n_components=3, max_epochs=2, random_state=0).fit(X)
    >>> fig = plot_reconstructions(vae, X, n_images=4, image_shape=(8, 8))
    >>> len(fig.axes)
    8
    """
    check_is_fitted(estimator)
    X = check_array(X, input_name="X")
    if not isinstance(n_images, Integral) or not 1 <= n_images <= X.shape[0]:
        raise ValueError(
            f"n_images must be an integer between 1 and n_samples={X.shape[0]}, got {n_images!r}."
        )
    X = X[:n_images]
    reconstructed = np.asarray(estimator.inverse_transform(estimator.transform(X)))
    X, reconstructed = _modelled_columns(estimator, X), _modelled_columns(estimator, reconstructed)
    shape = _resolve_image_shape(estimator, image_shape, X.shape[1])
    limits = _limits(X, reconstructed)

    fig = _new_figure(fig, (1.1 * n_images + 0.6, 2.6))
    axes = fig.subplots(2, n_images, squeeze=False)
    for j in range(n_images):
        _draw(axes[0, j], X[j], shape, cmap=cmap, limits=limits)
        _draw(axes[1, j], reconstructed[j], shape, cmap=cmap, limits=limits)
    axes[0, 0].set_ylabel("original", fontsize="small")
    axes[1, 0].set_ylabel("reconstruction", fontsize="small")
    return fig


def plot_training_history(estimator, *, fig=None):
    """Plot the loss, rate, distortion and KL per dimension over the epochs.

    Four panels from ``estimator.history_``: the training loss (the
    objective, beta-weighted), the rate ``train_kl`` (KL of the posterior
    from the prior), the distortion ``train_reconstruction``
    (``-E[log p(x|z)]``), and one line per latent dimension of
    ``train_kl_per_dim``. Validation curves (``valid_*``, present with
    ``early_stopping=True``) are drawn dashed.

    Parameters
    ----------
    estimator : fitted VAE estimator
        Model with a skorch ``history_``.
    fig : matplotlib Figure or None, default=None
        Figure to draw on (cleared first); ``None`` creates one.

    Returns
    -------
    fig : matplotlib Figure
        Four axes: loss, rate, distortion, KL per dimension (all in nats
        against the epoch).

    See Also
    --------
    plot_rate_distortion : Rate against distortion across models.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.plotting import plot_training_history
    >>> X = load_digits().data[:200] / 16
    >>> vae = BetaVAE(n_components=3, max_epochs=3, random_state=0).fit(X)
    >>> fig = plot_training_history(vae)
    >>> [ax.get_title() for ax in fig.axes]
    ['loss', 'rate', 'distortion', 'KL per dimension']
    """
    check_is_fitted(estimator)
    history = estimator.history_
    epochs = np.asarray(history[:, "epoch"])
    fig = _new_figure(fig, (10, 6.5))
    axes = fig.subplots(2, 2).ravel()
    panels = [
        ("loss", "loss", "training objective [nats]"),
        ("kl", "rate", "KL(q(z|x) || p(z)) [nats]"),
        ("reconstruction", "distortion", "-E[log p(x|z)] [nats]"),
    ]
    for ax, (key, title, ylabel) in zip(axes, panels):
        for prefix, style in (("train", "-"), ("valid", "--")):
            name = f"{prefix}_{key}"
            if name in history[-1]:
                ax.plot(epochs, history[:, name], style, label=prefix)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if f"valid_{key}" in history[-1]:
            ax.legend()

    ax = axes[3]
    kl_per_dim = np.asarray(history[:, "train_kl_per_dim"], dtype=float)
    for d in range(kl_per_dim.shape[1]):
        ax.plot(epochs, kl_per_dim[:, d], label=f"z{d}")
    ax.set_title("KL per dimension")
    ax.set_ylabel("KL(q(z_d|x) || p(z_d)) [nats]")
    if kl_per_dim.shape[1] <= 12:
        ax.legend(fontsize="small", ncols=2)
    for ax in axes:
        ax.set_xlabel("epoch")
    return fig


def _varying_params_labels(params):
    """``"beta=4, free_bits=0.5"`` per candidate, naming only the parameters that vary."""
    names = sorted({name for p in params for name in p})
    varying = [n for n in names if len({repr(p.get(n)) for p in params}) > 1] or names
    return [", ".join(f"{n}={p[n]:g}" if isinstance(p[n], float) else f"{n}={p[n]}"
                      for n in varying if n in p) for p in params]


def plot_rate_distortion(
    rate=None,
    distortion=None,
    *,
    cv_results=None,
    labels=None,
    connect=False,
    label=None,
    ax=None,
):
    """Plot models in the rate-distortion plane.

    Rate is ``KL(q(z|x) || p(z))`` (the information the code keeps about x),
    distortion ``-E_q[log p(x|z)]``, both in nats per sample; the negative
    ELBO is their sum, so lines of slope -1 join models of equal ELBO. Raising
    beta moves a model up and to the left (Alemi et al. 2018).

    Parameters
    ----------
    rate : array-like of shape (n_models,) or None, default=None
        Mean rate of each model, e.g. from
        :meth:`~sklearn_betavae.BetaVAE.rate_distortion`.
    distortion : array-like of shape (n_models,) or None, default=None
        Mean distortion of each model.
    cv_results : dict or None, default=None
        ``cv_results_`` of a search scored with
        ``{"rate": rate_scorer, "reconstruction": reconstruction_scorer}``
        (see :mod:`sklearn_betavae.metrics`). Instead of ``rate`` and
        ``distortion``: the rate is ``mean_test_rate``, the distortion
        ``-mean_test_reconstruction`` (the reconstruction scorer returns the
        negated distortion, higher being better), with their ``std_test_*``
        as error bars; labels default to the parameters that vary.
    labels : list of str or None, default=None
        Text written next to each point.
    connect : bool, default=False
        Join the points, in order of increasing rate, by a line.
    label : str or None, default=None
        Legend entry of these points, to draw several sets on one ``ax``.
    ax : matplotlib Axes or None, default=None
        Axes to draw on; ``None`` creates a figure.

    Returns
    -------
    ax : matplotlib Axes
        The axes, rate on x and distortion on y.

    See Also
    --------
    sklearn_betavae.metrics.rate_scorer, sklearn_betavae.metrics.reconstruction_scorer :
        The scorers that fill ``cv_results``.
    plot_training_history : Rate and distortion over the epochs of one model.

    References
    ----------
    Alemi, A. et al. (2018). Fixing a Broken ELBO. ICML.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_betavae.plotting import plot_rate_distortion
    >>> ax = plot_rate_distortion([2.0, 8.0, 20.0], [40.0, 25.0, 18.0],
    ...                           labels=["beta=8", "beta=2", "beta=1"], connect=True)
    >>> ax.get_xlabel()
    'rate KL(q(z|x) || p(z)) [nats]'
    """
    rate_err = distortion_err = None
    if cv_results is not None:
        if rate is not None or distortion is not None:
            raise ValueError("Pass either rate and distortion or cv_results, not both.")
        missing = {"mean_test_rate", "mean_test_reconstruction"} - set(cv_results)
        if missing:
            raise ValueError(
                f"cv_results lacks {sorted(missing)}: score the search with "
                'scoring={"rate": rate_scorer, "reconstruction": reconstruction_scorer, ...} '
                "from sklearn_betavae.metrics."
            )
        rate = np.asarray(cv_results["mean_test_rate"], dtype=float)
        distortion = -np.asarray(cv_results["mean_test_reconstruction"], dtype=float)
        rate_err = cv_results.get("std_test_rate")
        distortion_err = cv_results.get("std_test_reconstruction")
        if labels is None and "params" in cv_results:
            labels = _varying_params_labels(list(cv_results["params"]))
    if rate is None or distortion is None:
        raise ValueError("Pass rate and distortion, or cv_results.")
    rate = np.asarray(rate, dtype=float).ravel()
    distortion = np.asarray(distortion, dtype=float).ravel()
    if rate.shape != distortion.shape:
        raise ValueError(
            f"rate and distortion must have the same length, got {rate.size} and "
            f"{distortion.size}."
        )
    if labels is not None and len(labels) != rate.size:
        raise ValueError(f"labels must have {rate.size} entries, got {len(labels)}.")

    if ax is None:
        _, ax = plt.subplots(layout="constrained")
    points = ax.errorbar(
        rate, distortion, xerr=rate_err, yerr=distortion_err, fmt="o", label=label, zorder=2
    )
    if connect:
        order = np.argsort(rate, kind="stable")
        color = points.lines[0].get_color()
        ax.plot(rate[order], distortion[order], "-", color=color, alpha=0.6, zorder=1)
    for i, text in enumerate(labels or []):
        ax.annotate(str(text), (rate[i], distortion[i]), xytext=(5, 5),
                    textcoords="offset points", fontsize="small")
    ax.set_xlabel("rate KL(q(z|x) || p(z)) [nats]")
    ax.set_ylabel("distortion -E[log p(x|z)] [nats]")
    return ax
