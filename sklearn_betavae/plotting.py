"""Figures for fitted VAEs: latent traversals, reconstructions, training curves, rate-distortion.

Optional: needs matplotlib (``pip install sklearn-betavae[plotting]``).

Each figure is a Display object in scikit-learn's idiom (see
:class:`sklearn.metrics.RocCurveDisplay`): ``Display.from_estimator(estimator, ...)``
computes the values to draw and plots them; the constructor takes values
computed elsewhere and stores them as attributes; ``plot(ax=None)`` draws them
and stores the figure in ``figure_`` and its axes in ``ax_`` (one axes) or
``axes_`` (a grid of axes). The ``plot_*`` functions are shorthands over the
Displays that return the figure (or the axes). Nothing calls ``show``.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

try:
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
except ImportError as exc:  # matplotlib is an optional dependency
    raise ImportError(
        "sklearn_betavae.plotting requires matplotlib. Install it with "
        "`pip install sklearn-betavae[plotting]` (or `pip install matplotlib`)."
    ) from exc

__all__ = [
    "LatentTraversalDisplay",
    "RateDistortionDisplay",
    "ReconstructionDisplay",
    "TrainingHistoryDisplay",
    "plot_latent_traversals",
    "plot_rate_distortion",
    "plot_reconstructions",
    "plot_training_history",
]

_RATE_LABEL = "rate KL(q(z|x) || p(z)) [nats]"
_DISTORTION_LABEL = "distortion -E[log p(x|z)] [nats]"


def _resolve_image_shape(image_shape, n_features):
    """``(height, width)`` or ``(height, width, 3)`` to display a row of X, or None (lines)."""
    if image_shape is None:
        return None
    given = shape = tuple(int(s) for s in image_shape)
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


def _estimator_image_shape(estimator, image_shape):
    """``image_shape`` if given, else the estimator's (None when it has none)."""
    return image_shape if image_shape is not None else getattr(estimator, "image_shape", None)


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


def _grid_axes(ax, n_rows, n_cols, figsize):
    """The figure and a ``(n_rows, n_cols)`` array of axes for a grid Display to draw on.

    ``ax`` None: a new figure of ``figsize``. One Axes: replaced by the grid, in its
    place (scikit-learn's ``PartialDependenceDisplay`` likewise fills the bounds of
    one axes). Otherwise ``n_rows * n_cols`` Axes, taken in row-major order.
    """
    if ax is None:
        fig = plt.figure(figsize=figsize, layout="constrained")
        return fig, fig.subplots(n_rows, n_cols, squeeze=False)
    if isinstance(ax, Axes):
        spec = ax.get_subplotspec()
        if spec is None:
            raise ValueError(
                "ax must be a subplot (from plt.subplots or fig.add_subplot) for the grid "
                "to take its place; got axes at a fixed position."
            )
        fig = ax.figure
        ax.remove()
        grid = spec.subgridspec(n_rows, n_cols)
        axes = np.empty((n_rows, n_cols), dtype=object)
        for i in range(n_rows):
            for j in range(n_cols):
                axes[i, j] = fig.add_subplot(grid[i, j])
        return fig, axes
    axes = np.asarray(ax, dtype=object)
    if axes.size != n_rows * n_cols or not all(isinstance(a, Axes) for a in axes.flat):
        raise ValueError(
            f"ax must be None, one Axes or {n_rows * n_cols} Axes ({n_rows} rows of "
            f"{n_cols}); got {axes.size} objects."
        )
    axes = axes.reshape(n_rows, n_cols)
    return axes[0, 0].figure, axes


def _axes_of_figure(fig):
    """A whole-figure subplot of ``fig`` (cleared first) for a Display, or None for a new one."""
    if fig is None:
        return None
    fig.clear()
    return fig.add_subplot()


class LatentTraversalDisplay:
    """Latent traversals: decoded sweeps of each latent dimension around one code.

    Row ``i`` shows latent dimension ``dimensions[i]``: a code with that
    dimension set to each of ``values`` in turn (one column each), decoded to
    the mean of ``p(x | z)``. In a disentangled model each row changes one
    factor of variation; a row that does not change at all is a collapsed
    (inactive) dimension.

    Use :meth:`from_estimator` to compute and draw the traversals of a fitted
    model; the constructor takes decoded samples computed elsewhere. All
    parameters are stored as attributes.

    Parameters
    ----------
    decoded : ndarray of shape (n_dimensions, n_steps, n_features)
        The decoded samples: ``decoded[i, j]`` is the decoder mean of the code
        whose dimension ``dimensions[i]`` is ``values[j]``.
    values : ndarray of shape (n_steps,)
        The values taken by the swept dimension, one per column.
    dimensions : ndarray of shape (n_dimensions,)
        The latent dimension swept in each row.
    kl_per_dim : ndarray of shape (n_components,) or None, default=None
        KL divergence of each latent dimension in nats, written in the row
        labels; None leaves it out.
    image_shape : tuple of int or None, default=None
        ``(height, width)``, ``(1, height, width)`` or ``(3, height, width)``
        to draw the samples as images; None draws each as a line over its
        features.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes of shape (n_dimensions, n_steps)
        The axes of the images, one row per dimension.
    figure_ : matplotlib Figure
        The figure holding them.

    See Also
    --------
    plot_latent_traversals : The same figure, returned directly.
    ReconstructionDisplay : Samples above their reconstructions.

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
    >>> from sklearn_betavae.plotting import LatentTraversalDisplay
    >>> X = load_digits().data[:200] / 16
    >>> vae = BetaVAE(n_components=3, max_epochs=2, random_state=0).fit(X)
    >>> display = LatentTraversalDisplay.from_estimator(vae, X[0], n_steps=5, image_shape=(8, 8))
    >>> display.axes_.shape, display.decoded.shape
    ((3, 5), (3, 5, 64))
    """

    def __init__(self, *, decoded, values, dimensions, kl_per_dim=None, image_shape=None):
        self.decoded = decoded
        self.values = values
        self.dimensions = dimensions
        self.kl_per_dim = kl_per_dim
        self.image_shape = image_shape

    def plot(self, ax=None, *, cmap="gray"):
        """Draw the traversals, one row of images per latent dimension.

        Parameters
        ----------
        ax : matplotlib Axes, array of Axes or None, default=None
            Where to draw: None creates a figure; one Axes (a subplot) is
            replaced by the grid of images, in its place; an array of
            ``n_dimensions * n_steps`` Axes is used as is, row by row.
        cmap : str or Colormap, default="gray"
            Colormap of single-channel images.

        Returns
        -------
        display : LatentTraversalDisplay
            This object, with ``axes_`` and ``figure_`` set.
        """
        decoded = np.asarray(self.decoded, dtype=float)
        values = np.asarray(self.values, dtype=float)
        n_dims, n_steps, n_features = decoded.shape
        shape = _resolve_image_shape(self.image_shape, n_features)
        limits = _limits(decoded)
        kl = None if self.kl_per_dim is None else np.asarray(self.kl_per_dim, dtype=float)
        self.figure_, self.axes_ = _grid_axes(
            ax, n_dims, n_steps, (1.1 * n_steps + 0.6, 1.1 * n_dims + 0.4)
        )
        for i, d in enumerate(self.dimensions):
            for j in range(n_steps):
                axis = self.axes_[i, j]
                _draw(axis, decoded[i, j], shape, cmap=cmap, limits=limits)
                if i == 0:
                    axis.set_title(f"{values[j]:+.1f}", fontsize="small")
            label = f"z{d}" if kl is None else f"z{d}\nKL {kl[d]:.2f}"
            self.axes_[i, 0].set_ylabel(
                label, rotation=0, ha="right", va="center", fontsize="small"
            )
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        x,
        *,
        dimensions=None,
        n_steps=7,
        limit=3.0,
        sort_by_kl=True,
        image_shape=None,
        cmap="gray",
        ax=None,
    ):
        """Traverse the latent dimensions of a fitted model around the code of ``x``.

        The code of ``x`` is its posterior mean; each traversed dimension is
        set to ``n_steps`` values evenly spaced from ``-limit`` to ``+limit``
        (in units of the prior's standard deviation) while the others keep
        their values.

        Parameters
        ----------
        estimator : fitted VAE estimator
            Model with ``transform``, ``inverse_transform`` and ``n_components``,
            e.g. :class:`~sklearn_betavae.BetaVAE`.
        x : array-like of shape (n_features,) or (1, n_features)
            The sample whose code the traversals start from: a row of X, a
            pandas Series (a row of a DataFrame) or a one-row DataFrame, passed
            to the estimator with its column names.
        dimensions : int, array-like of int or None, default=None
            Latent dimensions to traverse, one row each. None: all of them; an
            integer ``k``: the first ``k`` after sorting (the ``k`` most
            informative with ``sort_by_kl=True``); a list: those dimensions.
        n_steps : int, default=7
            Number of values per dimension (columns).
        limit : float, default=3.0
            The sweep runs from ``-limit`` to ``+limit``.
        sort_by_kl : bool, default=True
            Order the rows by decreasing KL divergence of each dimension at
            the last training epoch (``history_[-1, "train_kl_per_dim"]``), so
            that the dimensions carrying the most information come first.
            Ignored when the estimator has no such history.
        image_shape : tuple of int or None, default=None
            ``(height, width)``, ``(1, height, width)`` or ``(3, height, width)``
            to display samples as images. None uses ``estimator.image_shape``;
            if that is None too, each decoded sample is drawn as a line.
        cmap : str or Colormap, default="gray"
            Colormap of single-channel images.
        ax : matplotlib Axes, array of Axes or None, default=None
            Where to draw, as in :meth:`plot`.

        Returns
        -------
        display : LatentTraversalDisplay
            The traversals, drawn.
        """
        check_is_fitted(estimator)
        x = _one_row(x)
        _check_positive_int(n_steps, "n_steps")
        if not isinstance(limit, Real) or not np.isfinite(limit) or limit <= 0:
            raise ValueError(f"limit must be a positive finite number, got {limit!r}.")
        dims = _traversed_dimensions(estimator, dimensions, sort_by_kl)
        code = np.asarray(estimator.transform(x), dtype=float)[0]  # checks x's features
        image_shape = _estimator_image_shape(estimator, image_shape)
        # Fail before any decoding; condition columns are not drawn.
        _resolve_image_shape(image_shape, _modelled_columns(estimator, check_array(x)).shape[1])

        values = np.linspace(-limit, limit, n_steps)
        codes = np.tile(code, (len(dims) * n_steps, 1))
        for i, d in enumerate(dims):
            codes[i * n_steps : (i + 1) * n_steps, d] = values
        decoded = _modelled_columns(estimator, np.asarray(estimator.inverse_transform(codes)))
        display = cls(
            decoded=decoded.reshape(len(dims), n_steps, -1),
            values=values,
            dimensions=dims,
            kl_per_dim=_last_kl_per_dim(estimator),
            image_shape=image_shape,
        )
        return display.plot(ax=ax, cmap=cmap)


def _check_positive_int(value, name):
    """A ValueError naming ``name`` unless ``value`` is a positive int (not a bool)."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _one_row(x):
    """``x`` as one row for the estimator: a 1-D array or Series becomes a row (a Series a
    one-row DataFrame, its index the column names); more than one row is an error."""
    if hasattr(x, "to_frame") and getattr(x, "ndim", 2) == 1:  # a pandas Series
        x = x.to_frame().T.infer_objects()
    elif not hasattr(x, "columns"):
        x = np.asarray(x)
        x = x.reshape(1, -1) if x.ndim == 1 else x
    if len(np.shape(x)) != 2 or np.shape(x)[0] != 1:
        raise ValueError(
            "x must be one sample, of shape (n_features,) or (1, n_features); got shape "
            f"{np.shape(x)}."
        )
    return x


def _traversed_dimensions(estimator, dimensions, sort_by_kl):
    """The latent dimensions to traverse, in row order (see ``from_estimator``)."""
    n_components = estimator.n_components
    kl = _last_kl_per_dim(estimator)
    order = np.arange(n_components)
    if sort_by_kl and kl is not None:
        order = np.argsort(-kl, kind="stable")
    if dimensions is None:
        return order
    if isinstance(dimensions, bool):
        raise ValueError(f"dimensions must be an int, a list of ints or None, got {dimensions!r}.")
    if isinstance(dimensions, Integral):
        if not 1 <= dimensions <= n_components:
            raise ValueError(
                f"dimensions={dimensions} must be between 1 and n_components={n_components}."
            )
        return order[:dimensions]
    dims = np.asarray(dimensions).ravel()
    if dims.size and not np.issubdtype(dims.dtype, np.integer):
        raise ValueError(f"dimensions must be integer indices, got {dimensions!r}.")
    dims = dims.astype(int)
    if dims.size == 0 or dims.min() < 0 or dims.max() >= n_components:
        raise ValueError(
            f"dimensions must be indices in [0, {n_components}), got {dimensions!r}."
        )
    if sort_by_kl and kl is not None:
        dims = dims[np.argsort(-kl[dims], kind="stable")]
    return dims


class ReconstructionDisplay:
    """Samples (top row) above their reconstructions (bottom row).

    The reconstruction of ``x`` is the decoder mean at the posterior mean,
    ``inverse_transform(transform(x))``. Use :meth:`from_estimator` for a
    fitted model; the constructor takes arrays computed elsewhere. All
    parameters are stored as attributes.

    Parameters
    ----------
    X : ndarray of shape (n_images, n_features)
        The samples, one column each.
    X_reconstructed : ndarray of shape (n_images, n_features)
        Their reconstructions.
    image_shape : tuple of int or None, default=None
        As in :class:`LatentTraversalDisplay`; None draws lines.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes of shape (2, n_images)
        The originals (row 0) and the reconstructions (row 1).
    figure_ : matplotlib Figure
        The figure holding them.

    See Also
    --------
    plot_reconstructions : The same figure, returned directly.
    LatentTraversalDisplay : What each latent dimension decodes to.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.plotting import ReconstructionDisplay
    >>> X = load_digits().data[:200] / 16
    >>> vae = BetaVAE(n_components=3, max_epochs=2, random_state=0).fit(X)
    >>> display = ReconstructionDisplay.from_estimator(vae, X, n_images=4, image_shape=(8, 8))
    >>> display.axes_.shape
    (2, 4)
    """

    def __init__(self, *, X, X_reconstructed, image_shape=None):
        self.X = X
        self.X_reconstructed = X_reconstructed
        self.image_shape = image_shape

    def plot(self, ax=None, *, cmap="gray"):
        """Draw the samples above their reconstructions.

        Parameters
        ----------
        ax : matplotlib Axes, array of Axes or None, default=None
            Where to draw: None creates a figure; one Axes (a subplot) is
            replaced by the two rows of images; an array of ``2 * n_images``
            Axes is used as is, row by row.
        cmap : str or Colormap, default="gray"
            Colormap of single-channel images.

        Returns
        -------
        display : ReconstructionDisplay
            This object, with ``axes_`` and ``figure_`` set.
        """
        X = np.asarray(self.X, dtype=float)
        reconstructed = np.asarray(self.X_reconstructed, dtype=float)
        if X.shape != reconstructed.shape or X.ndim != 2:
            raise ValueError(
                "X and X_reconstructed must be 2-D arrays of the same shape, got "
                f"{X.shape} and {reconstructed.shape}."
            )
        n_images = X.shape[0]
        shape = _resolve_image_shape(self.image_shape, X.shape[1])
        limits = _limits(X, reconstructed)
        self.figure_, self.axes_ = _grid_axes(ax, 2, n_images, (1.1 * n_images + 0.6, 2.6))
        for j in range(n_images):
            _draw(self.axes_[0, j], X[j], shape, cmap=cmap, limits=limits)
            _draw(self.axes_[1, j], reconstructed[j], shape, cmap=cmap, limits=limits)
        self.axes_[0, 0].set_ylabel("original", fontsize="small")
        self.axes_[1, 0].set_ylabel("reconstruction", fontsize="small")
        return self

    @classmethod
    def from_estimator(cls, estimator, X, *, n_images=8, image_shape=None, cmap="gray", ax=None):
        """Reconstruct the first ``n_images`` samples of ``X`` with a fitted model.

        Parameters
        ----------
        estimator : fitted VAE estimator
            Model with ``transform`` and ``inverse_transform``.
        X : array-like of shape (n_samples, n_features)
            Samples; the first ``n_images`` are shown.
        n_images : int, default=8
            Number of samples (columns); all of them when X has fewer.
        image_shape : tuple of int or None, default=None
            As in :meth:`LatentTraversalDisplay.from_estimator`: None uses
            ``estimator.image_shape``, and line plots when that is None too.
        cmap : str or Colormap, default="gray"
            Colormap of single-channel images.
        ax : matplotlib Axes, array of Axes or None, default=None
            Where to draw, as in :meth:`plot`.

        Returns
        -------
        display : ReconstructionDisplay
            The samples and their reconstructions, drawn.
        """
        check_is_fitted(estimator)
        _check_positive_int(n_images, "n_images")
        # The first rows as given (a DataFrame keeps its column names for the estimator).
        rows = X.iloc[:n_images] if hasattr(X, "iloc") else check_array(X, input_name="X")[:n_images]
        reconstructed = np.asarray(estimator.inverse_transform(estimator.transform(rows)))
        X = check_array(rows, input_name="X")
        X, reconstructed = _modelled_columns(estimator, X), _modelled_columns(estimator, reconstructed)
        image_shape = _estimator_image_shape(estimator, image_shape)
        _resolve_image_shape(image_shape, X.shape[1])
        display = cls(X=X, X_reconstructed=reconstructed, image_shape=image_shape)
        return display.plot(ax=ax, cmap=cmap)


class TrainingHistoryDisplay:
    """Training curves: loss, rate, distortion and KL per dimension over the epochs.

    Four panels: the training loss (the objective, beta-weighted), the rate
    (KL of the posterior from the prior), the distortion
    (``-E[log p(x|z)]``), and one line per latent dimension of its KL.
    Validation curves, when given, are drawn dashed. Use
    :meth:`from_estimator` to read them from a fitted model's ``history_``.
    All parameters are stored as attributes.

    Parameters
    ----------
    epochs : ndarray of shape (n_epochs,)
        The epoch numbers.
    loss : ndarray of shape (n_epochs,)
        Training objective per epoch (``history_[:, "train_loss"]``).
    rate : ndarray of shape (n_epochs,)
        Training KL per epoch (``history_[:, "train_kl"]``).
    distortion : ndarray of shape (n_epochs,)
        Training reconstruction term per epoch
        (``history_[:, "train_reconstruction"]``).
    kl_per_dim : ndarray of shape (n_epochs, n_components)
        KL of each latent dimension per epoch
        (``history_[:, "train_kl_per_dim"]``).
    valid_loss : ndarray of shape (n_epochs,) or None, default=None
        Validation objective per epoch, if any.
    valid_rate : ndarray of shape (n_epochs,) or None, default=None
        Validation KL per epoch, if any.
    valid_distortion : ndarray of shape (n_epochs,) or None, default=None
        Validation reconstruction term per epoch, if any.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes of shape (2, 2)
        The panels: loss, rate (first row); distortion, KL per dimension.
    figure_ : matplotlib Figure
        The figure holding them.

    See Also
    --------
    plot_training_history : The same figure, returned directly.
    RateDistortionDisplay : Rate against distortion across models.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.plotting import TrainingHistoryDisplay
    >>> X = load_digits().data[:200] / 16
    >>> vae = BetaVAE(n_components=3, max_epochs=3, random_state=0).fit(X)
    >>> display = TrainingHistoryDisplay.from_estimator(vae)
    >>> [ax.get_title() for ax in display.axes_.ravel()]
    ['loss', 'rate', 'distortion', 'KL per dimension']
    """

    def __init__(
        self,
        *,
        epochs,
        loss,
        rate,
        distortion,
        kl_per_dim,
        valid_loss=None,
        valid_rate=None,
        valid_distortion=None,
    ):
        self.epochs = epochs
        self.loss = loss
        self.rate = rate
        self.distortion = distortion
        self.kl_per_dim = kl_per_dim
        self.valid_loss = valid_loss
        self.valid_rate = valid_rate
        self.valid_distortion = valid_distortion

    def plot(self, ax=None):
        """Draw the four panels.

        Parameters
        ----------
        ax : matplotlib Axes, array of Axes or None, default=None
            Where to draw: None creates a figure; one Axes (a subplot) is
            replaced by the 2 x 2 panels; an array of 4 Axes is used as is.

        Returns
        -------
        display : TrainingHistoryDisplay
            This object, with ``axes_`` and ``figure_`` set.
        """
        epochs = np.asarray(self.epochs)
        self.figure_, self.axes_ = _grid_axes(ax, 2, 2, (10, 6.5))
        axes = self.axes_.ravel()
        panels = [
            (self.loss, self.valid_loss, "loss", "training objective [nats]"),
            (self.rate, self.valid_rate, "rate", "KL(q(z|x) || p(z)) [nats]"),
            (self.distortion, self.valid_distortion, "distortion", "-E[log p(x|z)] [nats]"),
        ]
        for axis, (train, valid, title, ylabel) in zip(axes, panels):
            axis.plot(epochs, train, "-", label="train")
            if valid is not None:
                axis.plot(epochs, valid, "--", label="valid")
                axis.legend()
            axis.set_title(title)
            axis.set_ylabel(ylabel)

        kl_per_dim = np.asarray(self.kl_per_dim, dtype=float)
        axis = axes[3]
        for d in range(kl_per_dim.shape[1]):
            axis.plot(epochs, kl_per_dim[:, d], label=f"z{d}")
        axis.set_title("KL per dimension")
        axis.set_ylabel("KL(q(z_d|x) || p(z_d)) [nats]")
        if kl_per_dim.shape[1] <= 12:
            axis.legend(fontsize="small", ncols=2)
        for axis in axes:
            axis.set_xlabel("epoch")
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Draw the training curves of a fitted model from its ``history_``.

        Validation curves (``valid_*``, present with ``early_stopping=True``)
        are drawn dashed.

        Parameters
        ----------
        estimator : fitted VAE estimator
            Model with a skorch ``history_``.
        ax : matplotlib Axes, array of Axes or None, default=None
            Where to draw, as in :meth:`plot`.

        Returns
        -------
        display : TrainingHistoryDisplay
            The curves, drawn.
        """
        check_is_fitted(estimator)
        history = estimator.history_

        def column(key):
            # NaN for epochs without the key (early stopping turned on or off by a warm start).
            present = [row[key] for row in history if key in row]
            if not present:
                return None
            missing = np.full(np.shape(present[0]), np.nan)
            return np.asarray([row.get(key, missing) for row in history], dtype=float)

        display = cls(
            epochs=np.asarray(history[:, "epoch"]),
            loss=column("train_loss"),
            rate=column("train_kl"),
            distortion=column("train_reconstruction"),
            kl_per_dim=column("train_kl_per_dim"),
            valid_loss=column("valid_loss"),
            valid_rate=column("valid_kl"),
            valid_distortion=column("valid_reconstruction"),
        )
        return display.plot(ax=ax)


def _varying_params_labels(params):
    """``"beta=4, free_bits=0.5"`` per candidate, naming only the parameters that vary."""
    names = sorted({name for p in params for name in p})
    varying = [n for n in names if len({repr(p.get(n)) for p in params}) > 1] or names
    return [", ".join(f"{n}={p[n]:g}" if isinstance(p[n], float) else f"{n}={p[n]}"
                      for n in varying if n in p) for p in params]


class RateDistortionDisplay:
    """Models as points in the rate-distortion plane.

    Rate is ``KL(q(z|x) || p(z))`` (the information the code keeps about x),
    distortion ``-E_q[log p(x|z)]``, both in nats per sample; the negative
    ELBO is their sum, so lines of slope -1 join models of equal ELBO. Raising
    beta moves a model up and to the left (Alemi et al. 2018).

    One display holds any number of models: :meth:`from_estimator` places one
    fitted model; :meth:`from_cv_results` every candidate of a search; the
    constructor takes rates and distortions computed elsewhere. To compare
    sets of models, draw several displays on one axes, passing
    ``ax=display.ax_``, each with its ``name`` in the legend. All parameters
    are stored as attributes.

    Parameters
    ----------
    rate : array-like of shape (n_models,)
        Mean rate of each model.
    distortion : array-like of shape (n_models,)
        Mean distortion of each model.
    rate_std : array-like of shape (n_models,) or None, default=None
        Error bars of the rates (e.g. across cross-validation folds).
    distortion_std : array-like of shape (n_models,) or None, default=None
        Error bars of the distortions.
    labels : list of str or None, default=None
        Text written next to each point.
    name : str or None, default=None
        Legend entry of these points; None adds none.

    Attributes
    ----------
    errorbar_ : matplotlib ErrorbarContainer
        The points and their error bars.
    line_ : matplotlib Line2D or None
        The line joining the points in order of rate (``connect=True``).
    ax_ : matplotlib Axes
        The axes, rate on x and distortion on y.
    figure_ : matplotlib Figure
        The figure holding them.

    See Also
    --------
    plot_rate_distortion : The same plot, returning the axes.
    TrainingHistoryDisplay : Rate and distortion over the epochs of one model.

    References
    ----------
    Alemi, A. et al. (2018). Fixing a Broken ELBO. ICML.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_betavae.plotting import RateDistortionDisplay
    >>> display = RateDistortionDisplay(rate=[2.0, 8.0, 20.0], distortion=[40.0, 25.0, 18.0],
    ...                                 labels=["beta=8", "beta=2", "beta=1"])
    >>> display = display.plot(connect=True)
    >>> display.ax_.get_xlabel()
    'rate KL(q(z|x) || p(z)) [nats]'

    Two fitted models, one call each, on the same axes:

    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> X = load_digits().data[:200] / 16
    >>> vae = BetaVAE(n_components=2, max_epochs=2, random_state=0).fit(X)
    >>> strong = BetaVAE(n_components=2, beta=4.0, max_epochs=2, random_state=0).fit(X)
    >>> display = RateDistortionDisplay.from_estimator(vae, X, name="beta=1")
    >>> display = RateDistortionDisplay.from_estimator(strong, X, name="beta=4", ax=display.ax_)
    >>> [text.get_text() for text in display.ax_.get_legend().get_texts()]
    ['beta=1', 'beta=4']
    """

    def __init__(
        self,
        *,
        rate,
        distortion,
        rate_std=None,
        distortion_std=None,
        labels=None,
        name=None,
    ):
        self.rate = rate
        self.distortion = distortion
        self.rate_std = rate_std
        self.distortion_std = distortion_std
        self.labels = labels
        self.name = name

    def plot(self, ax=None, *, name=None, connect=False):
        """Draw the points, with their error bars and labels.

        Parameters
        ----------
        ax : matplotlib Axes or None, default=None
            Axes to draw on; None creates a figure.
        name : str or None, default=None
            Legend entry; None uses the ``name`` given at construction.
        connect : bool, default=False
            Join the points, in order of increasing rate, by a line.

        Returns
        -------
        display : RateDistortionDisplay
            This object, with ``errorbar_``, ``line_``, ``ax_`` and ``figure_`` set.
        """
        rate = np.asarray(self.rate, dtype=float).ravel()
        distortion = np.asarray(self.distortion, dtype=float).ravel()
        if rate.shape != distortion.shape:
            raise ValueError(
                f"rate and distortion must have the same length, got {rate.size} and "
                f"{distortion.size}."
            )
        if self.labels is not None and len(self.labels) != rate.size:
            raise ValueError(f"labels must have {rate.size} entries, got {len(self.labels)}.")
        name = self.name if name is None else name

        if ax is None:
            _, ax = plt.subplots(layout="constrained")
        self.ax_, self.figure_ = ax, ax.figure
        self.errorbar_ = ax.errorbar(
            rate, distortion, xerr=self.rate_std, yerr=self.distortion_std, fmt="o",
            label=name, zorder=2,
        )
        self.line_ = None
        if connect:
            order = np.argsort(rate, kind="stable")
            color = self.errorbar_.lines[0].get_color()
            (self.line_,) = ax.plot(
                rate[order], distortion[order], "-", color=color, alpha=0.6, zorder=1
            )
        for i, text in enumerate(self.labels or []):
            ax.annotate(str(text), (rate[i], distortion[i]), xytext=(5, 5),
                        textcoords="offset points", fontsize="small")
        ax.set_xlabel(_RATE_LABEL)
        ax.set_ylabel(_DISTORTION_LABEL)
        if name is not None:
            ax.legend()
        return self

    @classmethod
    def from_estimator(cls, estimator, X, *, name=None, ax=None):
        """Place a fitted model at its mean rate and distortion on ``X``.

        Parameters
        ----------
        estimator : fitted VAE estimator
            Model with ``rate_distortion``, e.g. :class:`~sklearn_betavae.BetaVAE`.
        X : array-like of shape (n_samples, n_features)
            Data to evaluate the model on, typically held out.
        name : str or None, default=None
            Legend entry; None uses the estimator's class name.
        ax : matplotlib Axes or None, default=None
            Axes to draw on; None creates a figure. Pass the ``ax_`` of
            another display to compare models on one plot.

        Returns
        -------
        display : RateDistortionDisplay
            The point, drawn.
        """
        check_is_fitted(estimator)
        rate, distortion = estimator.rate_distortion(X)
        display = cls(
            rate=[float(np.mean(rate))],
            distortion=[float(np.mean(distortion))],
            name=type(estimator).__name__ if name is None else name,
        )
        return display.plot(ax=ax)

    @classmethod
    def from_cv_results(cls, cv_results, *, labels=None, connect=False, name=None, ax=None):
        """Place every candidate of a hyperparameter search.

        The search (e.g. :class:`~sklearn.model_selection.GridSearchCV`) must be
        scored with ``{"rate": rate_scorer, "reconstruction":
        reconstruction_scorer}`` (see :mod:`sklearn_betavae.metrics`): the rate
        is ``mean_test_rate``, the distortion ``-mean_test_reconstruction``
        (the reconstruction scorer returns the negated distortion, higher
        being better), with their ``std_test_*`` across folds as error bars.

        Parameters
        ----------
        cv_results : dict
            The ``cv_results_`` of the search.
        labels : list of str or None, default=None
            Text next to each point; None names the parameters that vary
            between candidates (``"beta=4"``).
        connect : bool, default=False
            Join the points, in order of increasing rate, by a line.
        name : str or None, default=None
            Legend entry of these points; None adds none.
        ax : matplotlib Axes or None, default=None
            Axes to draw on; None creates a figure.

        Returns
        -------
        display : RateDistortionDisplay
            The candidates, drawn.
        """
        missing = {"mean_test_rate", "mean_test_reconstruction"} - set(cv_results)
        if missing:
            raise ValueError(
                f"cv_results lacks {sorted(missing)}: score the search with "
                'scoring={"rate": rate_scorer, "reconstruction": reconstruction_scorer, ...} '
                "from sklearn_betavae.metrics."
            )
        if labels is None and "params" in cv_results:
            labels = _varying_params_labels(list(cv_results["params"]))
        display = cls(
            rate=np.asarray(cv_results["mean_test_rate"], dtype=float),
            distortion=-np.asarray(cv_results["mean_test_reconstruction"], dtype=float),
            rate_std=cv_results.get("std_test_rate"),
            distortion_std=cv_results.get("std_test_reconstruction"),
            labels=labels,
            name=name,
        )
        return display.plot(ax=ax, connect=connect)


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

    A shorthand for :meth:`LatentTraversalDisplay.from_estimator` (see there
    and in :class:`LatentTraversalDisplay` what the rows and columns show)
    that draws on ``fig`` and returns it.

    Parameters
    ----------
    estimator : fitted VAE estimator
        Model with ``transform``, ``inverse_transform`` and ``n_components``.
    x : array-like of shape (n_features,) or (1, n_features)
        The sample whose code the traversals start from.
    dimensions : int, array-like of int or None, default=None
        Latent dimensions to traverse: all, the first ``k`` or a list.
    n_steps : int, default=7
        Number of values per dimension (columns).
    limit : float, default=3.0
        The sweep runs from ``-limit`` to ``+limit``.
    sort_by_kl : bool, default=True
        Order the rows by decreasing KL of their dimension.
    image_shape : tuple of int or None, default=None
        Shape of the images; None uses ``estimator.image_shape`` or draws lines.
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
    LatentTraversalDisplay : The Display object behind this function.
    plot_reconstructions : Samples next to their reconstructions.

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
    display = LatentTraversalDisplay.from_estimator(
        estimator,
        x,
        dimensions=dimensions,
        n_steps=n_steps,
        limit=limit,
        sort_by_kl=sort_by_kl,
        image_shape=image_shape,
        cmap=cmap,
        ax=_axes_of_figure(fig),
    )
    return display.figure_


def plot_reconstructions(estimator, X, *, n_images=8, image_shape=None, cmap="gray", fig=None):
    """Show samples (top row) above their reconstructions (bottom row).

    A shorthand for :meth:`ReconstructionDisplay.from_estimator` that draws
    on ``fig`` and returns it.

    Parameters
    ----------
    estimator : fitted VAE estimator
        Model with ``transform`` and ``inverse_transform``.
    X : array-like of shape (n_samples, n_features)
        Samples; the first ``n_images`` are shown.
    n_images : int, default=8
        Number of samples (columns); all of them when X has fewer.
    image_shape : tuple of int or None, default=None
        Shape of the images; None uses ``estimator.image_shape`` or draws lines.
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
    ReconstructionDisplay : The Display object behind this function.
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
    display = ReconstructionDisplay.from_estimator(
        estimator, X, n_images=n_images, image_shape=image_shape, cmap=cmap,
        ax=_axes_of_figure(fig),
    )
    return display.figure_


def plot_training_history(estimator, *, fig=None):
    """Plot the loss, rate, distortion and KL per dimension over the epochs.

    A shorthand for :meth:`TrainingHistoryDisplay.from_estimator` that draws
    the four panels of ``estimator.history_`` on ``fig`` and returns it.

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
    TrainingHistoryDisplay : The Display object behind this function.
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
    return TrainingHistoryDisplay.from_estimator(estimator, ax=_axes_of_figure(fig)).figure_


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

    A shorthand for :class:`RateDistortionDisplay` (from arrays) and
    :meth:`RateDistortionDisplay.from_cv_results` (see there what the plane
    shows) that returns the axes.

    Parameters
    ----------
    rate : array-like of shape (n_models,) or None, default=None
        Mean rate of each model, e.g. from
        :meth:`~sklearn_betavae.BetaVAE.rate_distortion`.
    distortion : array-like of shape (n_models,) or None, default=None
        Mean distortion of each model.
    cv_results : dict or None, default=None
        Instead of ``rate`` and ``distortion``: the ``cv_results_`` of a
        search scored with ``{"rate": rate_scorer, "reconstruction":
        reconstruction_scorer}``, as in
        :meth:`RateDistortionDisplay.from_cv_results`.
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
    RateDistortionDisplay : The Display object behind this function.
    sklearn_betavae.metrics.rate_scorer, sklearn_betavae.metrics.reconstruction_scorer :
        The scorers that fill ``cv_results``.
    plot_training_history : Rate and distortion over the epochs of one model.

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
    if cv_results is not None:
        if rate is not None or distortion is not None:
            raise ValueError("Pass either rate and distortion or cv_results, not both.")
        display = RateDistortionDisplay.from_cv_results(
            cv_results, labels=labels, connect=connect, name=label, ax=ax
        )
    elif rate is None or distortion is None:
        raise ValueError("Pass rate and distortion, or cv_results.")
    else:
        display = RateDistortionDisplay(
            rate=rate, distortion=distortion, labels=labels, name=label
        ).plot(ax=ax, connect=connect)
    return display.ax_
