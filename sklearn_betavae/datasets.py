"""Images with known generative factors: procedural 2-D sprites and dSprites.

``make_sprites`` renders binary sprites on the factor grid of dSprites
(Matthey et al. 2017) with numpy alone; ``load_dsprites`` reads the original
archive when a user has it; ``SpritesSampler`` renders images for chosen factor
values, which the intervention-based metrics (``beta_vae_score``,
``factor_vae_score``) need.

Like scikit-learn's generators and loaders, ``make_sprites`` and
``load_dsprites`` return ``(X, factors)`` by default, a
:class:`~sklearn.utils.Bunch` with ``return_X_y=False``, and pandas
DataFrames with named columns with ``as_frame=True``.
"""

from numbers import Integral

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = ["SpritesSampler", "load_dsprites", "make_sprites"]

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")

# Circumscribed radius of a sprite at scale 1, as a fraction of the image side: the
# largest sprite at the outermost position stays inside the image (0.25 + 1/128 > 0.2).
_RADIUS_FRACTION = 0.2
# The heart (x^2 + y^2 - 1)^3 <= x^2 y^3 spans y in [-1, 1.236]: its bounding box is
# centred at y = 0.118 and its farthest point lies 1.3367 from there (computed on a
# 4001 x 4001 grid); dividing by 1.337 puts it inside the unit circle like the others.
_HEART_CENTER_Y = 0.118
_HEART_RADIUS = 1.337
# Semi-minor axis of the ellipse (semi-major 1): elongated, so orientation is visible.
_ELLIPSE_MINOR = 0.5
# Images written per vectorised step, bounding the temporary index arrays (~25 MB at 64 x 64).
_CHUNK_SIZE = 4096


def _import_pandas(caller):
    """pandas, imported on demand: only ``as_frame=True`` needs it."""
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            f"{caller} with as_frame=True requires pandas: pip install pandas."
        ) from exc
    return pandas


def _describe(n_samples, height, width, source):
    """The ``DESCR`` of a sprites Bunch: what the rows and the factor columns hold."""
    return (
        f"{source}\n\n"
        f"{n_samples} binary images of {height} x {width} pixels, flattened row by row "
        f"(feature pixel_i_j is row i, column j), and their 5 generative factors:\n\n"
        "- shape: 1 square, 2 ellipse, 3 heart\n"
        "- scale: 6 values in [0.5, 1]\n"
        "- orientation: 40 angles in radians\n"
        "- posX: 32 positions in [0, 1], left to right\n"
        "- posY: 32 positions in [0, 1], top to bottom\n\n"
        "target holds the factor values, classes their class indices.\n\n"
        "Matthey, L., Higgins, I., Hassabis, D. and Lerchner, A. (2017). dSprites: "
        "Disentanglement testing Sprites dataset. https://github.com/deepmind/dsprites-dataset"
    )


def _sprites_output(X, factors, classes, *, image_shape, return_X_y, return_classes, as_frame,
                    caller, source):
    """Arrange images and factors as ``(X, factors[, classes])`` or a Bunch, arrays or frames.

    The DataFrames wrap the arrays without copying them; only the Bunch's ``frame``
    (data and target side by side) is a copy.
    """
    height, width = image_shape
    images = X.reshape(len(X), height, width)
    feature_names = [f"pixel_{i}_{j}" for i in range(height) for j in range(width)]
    target_names = list(FACTOR_NAMES)
    if as_frame:
        pd = _import_pandas(caller)
        X = pd.DataFrame(X, columns=feature_names, copy=False)
        factors = pd.DataFrame(factors, columns=target_names, copy=False)
        classes = pd.DataFrame(classes, columns=target_names, copy=False)
    if return_X_y:
        return (X, factors, classes) if return_classes else (X, factors)
    return Bunch(
        data=X,
        target=factors,
        classes=classes,
        frame=pd.concat([X, factors], axis=1) if as_frame else None,
        images=images,
        feature_names=feature_names,
        target_names=target_names,
        DESCR=_describe(len(images), height, width, source),
    )


def _inside_sprite(shape, u, v):
    """Whether points (u, v) of the sprite's unit frame (v up) are inside the shape.

    ``shape`` holds the shape class (0 square, 1 ellipse, 2 heart) of each point and
    broadcasts against ``u`` and ``v``. Every shape fits in the unit circle.
    """
    half_side = 1 / np.sqrt(2)
    square = (np.abs(u) <= half_side) & (np.abs(v) <= half_side)
    ellipse = u**2 + (v / _ELLIPSE_MINOR) ** 2 <= 1
    x = u * _HEART_RADIUS
    y = v * _HEART_RADIUS + _HEART_CENTER_Y
    heart = (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    return np.where(shape == 0, square, np.where(shape == 1, ellipse, heart))


class SpritesSampler:
    """Renderer of 2-D sprites for given factor classes, on the dSprites grid.

    The five factors, in this order, and their values:

    ===========  ======  ===================================================
    factor       values  value
    ===========  ======  ===================================================
    shape        3       1 square, 2 ellipse, 3 heart (as dSprites)
    scale        6       ``linspace(0.5, 1, 6)``
    orientation  40      ``2 * pi * k / 40``, counter-clockwise, in [0, 2 pi)
    posX         32      ``linspace(0, 1, 32)``, left to right
    posY         32      ``linspace(0, 1, 32)``, top to bottom (image rows)
    ===========  ======  ===================================================

    A sprite at scale ``s`` fits in a circle of radius ``0.2 * s * image_size``
    pixels; its centre moves over the central half of the image, the 32
    positions of an axis being the centres of 32 equal cells of
    ``[image_size / 4, 3 * image_size / 4]``. A pixel is 1 when its centre
    lies inside the shape. Each distinct sprite (shape, scale, orientation and
    sub-pixel offset) is rasterised once per block of images and pasted at its integer
    offsets, so rendering is fast, and the results are exactly those of testing
    every pixel of every image.

    The sampler is the ``sampler`` argument of
    :func:`~sklearn_betavae.metrics.beta_vae_score` and
    :func:`~sklearn_betavae.metrics.factor_vae_score`: anything with
    ``n_values``, ``sample_classes`` and ``render`` like this class will do.

    Parameters
    ----------
    image_size : int, default=64
        Side of the square images in pixels, at least 16. 64 is the size of
        dSprites; 32 or 16 give fast data for tests and examples.

    Attributes
    ----------
    n_values : tuple of int
        Number of values of each factor: ``(3, 6, 40, 32, 32)``.
    factor_names : tuple of str
        ``("shape", "scale", "orientation", "posX", "posY")``.
    factor_values : list of ndarray
        The values of each factor, indexed by class.

    See Also
    --------
    make_sprites : The whole grid or a random sample of it as a data set.

    Examples
    --------
    >>> from sklearn_betavae.datasets import SpritesSampler
    >>> sampler = SpritesSampler(image_size=32)
    >>> classes = sampler.sample_classes(4, random_state=0)
    >>> classes.shape
    (4, 5)
    >>> X = sampler.render(classes)
    >>> X.shape, X.dtype
    ((4, 1024), dtype('uint8'))
    >>> sampler.values([[2, 0, 10, 0, 31]])  # a heart, smallest, a quarter turn, bottom left
    array([[3.        , 0.5       , 1.57079633, 0.        , 1.        ]])
    """

    n_values = (3, 6, 40, 32, 32)
    factor_names = FACTOR_NAMES

    def __init__(self, image_size=64):
        if not isinstance(image_size, Integral) or isinstance(image_size, bool):
            raise ValueError(f"image_size must be an integer, got {image_size!r}.")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {image_size}.")
        self.image_size = int(image_size)
        self.factor_values = [
            np.arange(1.0, 4.0),
            np.linspace(0.5, 1.0, 6),
            2 * np.pi * np.arange(40) / 40,
            np.linspace(0.0, 1.0, 32),
            np.linspace(0.0, 1.0, 32),
        ]
        size = self.image_size
        radius = _RADIUS_FRACTION * size
        # Patch side: the largest sprite plus one pixel of margin on each side.
        self._patch_size = min(size, 2 * int(np.ceil(radius)) + 2)
        # Centres of the 32 cells of [size / 4, 3 size / 4]: dyadic rationals, exact in float64.
        centres = size / 4 + (2 * np.arange(32) + 1) * size / 128
        start = np.clip(np.floor(centres).astype(np.intp) - self._patch_size // 2,
                        0, size - self._patch_size)
        # A patch depends on the sprite centre relative to its corner: one per distinct offset.
        offsets, self._phase = np.unique(centres - start, return_inverse=True)
        self._offsets = offsets
        self._start = start

    def sample_classes(self, n_samples, random_state=None):
        """Draw factor classes independently and uniformly, with replacement.

        Parameters
        ----------
        n_samples : int
            Number of factor combinations to draw.
        random_state : int, RandomState instance or None, default=None
            Seed or generator of the draws.

        Returns
        -------
        classes : ndarray of shape (n_samples, 5), dtype int64
            Class index of each factor, column ``j`` in ``[0, n_values[j])``.
        """
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 0:
            raise ValueError(f"n_samples must be a non-negative integer, got {n_samples!r}.")
        rng = check_random_state(random_state)
        return np.column_stack(
            [rng.randint(n, size=int(n_samples)) for n in self.n_values]
        ).astype(np.int64).reshape(int(n_samples), len(self.n_values))

    def values(self, classes):
        """Factor values of factor classes.

        Parameters
        ----------
        classes : array-like of shape (n_samples, 5)
            Class index of each factor.

        Returns
        -------
        factors : ndarray of shape (n_samples, 5), dtype float64
            Value of each factor (see the class docstring).
        """
        classes = self._check_classes(classes)
        return np.column_stack(
            [values[classes[:, j]] for j, values in enumerate(self.factor_values)]
        ).reshape(len(classes), len(self.n_values))

    def render(self, classes, out=None):
        """Images of the sprites with the given factor classes.

        Parameters
        ----------
        classes : array-like of shape (n_samples, 5)
            Class index of each factor.
        out : ndarray of shape (n_samples, image_size ** 2), dtype uint8, default=None
            Array to write the images into (zeroed first); a new one when None.

        Returns
        -------
        X : ndarray of shape (n_samples, image_size ** 2), dtype uint8
            Binary images (0 background, 1 sprite), flattened row by row.
        """
        classes = self._check_classes(classes)
        n_pixels = self.image_size**2
        if out is None:
            out = np.zeros((len(classes), n_pixels), dtype=np.uint8)
        elif (
            not isinstance(out, np.ndarray)
            or out.shape != (len(classes), n_pixels)
            or out.dtype != np.uint8
            or not out.flags.c_contiguous
        ):
            raise ValueError(
                f"out must be a C-contiguous uint8 array of shape {(len(classes), n_pixels)}."
            )
        else:
            out[...] = 0
        flat = out.reshape(-1)
        for begin in range(0, len(classes), _CHUNK_SIZE):
            self._render_chunk(classes[begin : begin + _CHUNK_SIZE], flat, begin)
        return out

    def _render_chunk(self, classes, flat, first_row):
        """Paste the sprites of ``classes`` into rows ``first_row, ...`` of ``flat``."""
        size, patch = self.image_size, self._patch_size
        n_phases = len(self._offsets)
        phase_x = self._phase[classes[:, 3]]
        phase_y = self._phase[classes[:, 4]]
        key = np.ravel_multi_index(
            (classes[:, 0], classes[:, 1], classes[:, 2], phase_x, phase_y),
            self.n_values[:3] + (n_phases, n_phases),
        )
        unique_keys, which = np.unique(key, return_inverse=True)
        shape, scale, orientation, unique_px, unique_py = np.unravel_index(
            unique_keys, self.n_values[:3] + (n_phases, n_phases)
        )
        patches = self._rasterize(shape, scale, orientation, unique_px, unique_py)
        # Flat index of every patch pixel in its image: row-major (image, row, column).
        corner = (
            (first_row + np.arange(len(classes))) * size**2
            + self._start[classes[:, 4]] * size
            + self._start[classes[:, 3]]
        )
        within = (np.arange(patch)[:, None] * size + np.arange(patch)[None, :]).ravel()
        flat[(corner[:, None] + within[None, :]).ravel()] = patches[which].ravel()

    def _rasterize(self, shape, scale, orientation, phase_x, phase_y):
        """Patches (n, p * p) of uint8 for classes of shape, scale, orientation, offsets."""
        pixel_centres = np.arange(self._patch_size) + 0.5
        radius = _RADIUS_FRACTION * self.image_size * self.factor_values[1][scale]
        angle = self.factor_values[2][orientation]
        # Offsets of pixel centres from the sprite centre, in units of its radius; v points up.
        dx = (pixel_centres[None, :] - self._offsets[phase_x][:, None]) / radius[:, None]
        dv = -(pixel_centres[None, :] - self._offsets[phase_y][:, None]) / radius[:, None]
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        dx, dv = dx[:, None, :], dv[:, :, None]
        # Rotating the sprite by +angle is rotating the pixel grid by -angle.
        u = cos * dx + sin * dv
        v = cos * dv - sin * dx
        inside = _inside_sprite(shape[:, None, None], u, v)
        return inside.reshape(len(shape), -1).astype(np.uint8)

    def _check_classes(self, classes):
        classes = np.asarray(classes)
        if classes.ndim != 2 or classes.shape[1] != len(self.n_values):
            raise ValueError(
                f"classes must have shape (n_samples, {len(self.n_values)}), "
                f"got {classes.shape}."
            )
        if classes.size and not np.issubdtype(classes.dtype, np.integer):
            raise ValueError(f"classes must be integers, got dtype {classes.dtype}.")
        classes = classes.astype(np.intp, copy=False)
        if classes.size and ((classes < 0).any() or (classes >= self.n_values).any()):
            raise ValueError(f"classes out of range: factor j takes values in [0, {self.n_values}[j]).")
        return classes


def make_sprites(
    n_samples=None,
    *,
    image_size=64,
    random_state=None,
    return_classes=False,
    return_X_y=True,
    as_frame=False,
):
    """Generate binary 2-D sprites with known generative factors.

    The procedural twin of dSprites (Matthey et al. 2017) without its constant
    colour: 3 shapes x 6 scales x 40 orientations x 32 x 32 positions, 737,280
    images in all. See :class:`SpritesSampler` for the factor values and the
    rendering. The whole grid at 64 x 64 takes about 2.8 GiB as uint8.

    Like scikit-learn's ``make_classification``, it returns ``(X, factors)`` by
    default and a :class:`~sklearn.utils.Bunch` with ``return_X_y=False``, in the
    layout of ``load_digits``: ``data``, ``target``, ``frame``, ``feature_names``,
    ``target_names``, ``images`` and ``DESCR``, plus the factor ``classes``.

    Parameters
    ----------
    n_samples : int or None, default=None
        None gives the whole grid in a fixed order: row-major over
        (shape, scale, orientation, posX, posY), posY varying fastest, as in
        dSprites. An integer draws that many factor combinations independently
        and uniformly (with replacement).
    image_size : int, default=64
        Side of the square images in pixels, at least 16.
    random_state : int, RandomState instance or None, default=None
        Seed of the draws when ``n_samples`` is an integer.
    return_classes : bool, default=False
        Also return the class index of each factor (with ``return_X_y=True``;
        the Bunch always holds them).
    return_X_y : bool, default=True
        Return ``(X, factors)`` (or ``(X, factors, classes)``) rather than a
        :class:`~sklearn.utils.Bunch`.
    as_frame : bool, default=False
        Return pandas DataFrames (needs pandas): ``X`` with columns
        ``pixel_0_0`` ... (row, column), ``factors`` and ``classes`` with columns
        ``shape``, ``scale``, ``orientation``, ``posX``, ``posY``. They wrap the
        arrays without copying them.

    Returns
    -------
    X : ndarray or DataFrame of shape (n_samples, image_size ** 2), dtype uint8
        Binary images (0 or 1), flattened row by row.
    factors : ndarray or DataFrame of shape (n_samples, 5), dtype float64
        Factor values: shape (1, 2, 3), scale, orientation (radians), posX, posY.
    classes : ndarray or DataFrame of shape (n_samples, 5), dtype int64
        Class index of each factor. Only returned if ``return_classes`` is True.
    data : :class:`~sklearn.utils.Bunch`
        Instead of the tuple when ``return_X_y=False``, with attributes:

        - ``data``: ``X`` above (a DataFrame with ``as_frame=True``);
        - ``target``: ``factors`` above;
        - ``classes``: the class index of each factor;
        - ``frame``: with ``as_frame=True``, a DataFrame of ``data`` and
          ``target`` side by side (a copy: mind the memory of the whole grid);
          None otherwise;
        - ``images``: ndarray of shape (n_samples, image_size, image_size),
          a view of ``data``;
        - ``feature_names``: ``["pixel_0_0", "pixel_0_1", ...]``;
        - ``target_names``: the factor names;
        - ``DESCR``: a description of the data set.

    See Also
    --------
    load_dsprites : The original dSprites images, in the same format.
    SpritesSampler : Renders images for chosen factor classes.

    References
    ----------
    Matthey, L., Higgins, I., Hassabis, D. and Lerchner, A. (2017). dSprites:
    Disentanglement testing Sprites dataset. https://github.com/deepmind/dsprites-dataset

    Examples
    --------
    >>> from sklearn_betavae.datasets import make_sprites
    >>> X, factors = make_sprites(100, image_size=32, random_state=0)
    >>> X.shape, factors.shape
    ((100, 1024), (100, 5))
    >>> X.max()
    np.uint8(1)

    A Bunch of DataFrames with named columns:

    >>> sprites = make_sprites(100, image_size=32, random_state=0,
    ...                        return_X_y=False, as_frame=True)
    >>> sprites.target_names
    ['shape', 'scale', 'orientation', 'posX', 'posY']
    >>> sprites.frame.shape, sprites.images.shape
    ((100, 1029), (100, 32, 32))
    """
    sampler = SpritesSampler(image_size=image_size)
    if n_samples is None:
        classes = np.indices(sampler.n_values).reshape(len(sampler.n_values), -1).T
        classes = classes.astype(np.int64)
    else:
        classes = sampler.sample_classes(n_samples, random_state=random_state)
    return _sprites_output(
        sampler.render(classes),
        sampler.values(classes),
        classes,
        image_shape=(sampler.image_size, sampler.image_size),
        return_X_y=return_X_y,
        return_classes=return_classes,
        as_frame=as_frame,
        caller="make_sprites",
        source="Procedural sprites on the dSprites factor grid, from make_sprites.",
    )


def load_dsprites(path, *, return_classes=False, return_X_y=True, as_frame=False):
    """Load the original dSprites archive, in the format of :func:`make_sprites`.

    Reads ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (keys ``imgs``,
    ``latents_values``, ``latents_classes``), which this package does not
    download. The constant colour factor (column 0) is dropped, leaving
    shape, scale, orientation, posX, posY. Note that dSprites' orientations
    are ``linspace(0, 2 pi, 40)``, whose first and last values draw the same
    image, while :func:`make_sprites` uses 40 distinct angles in [0, 2 pi).

    Parameters
    ----------
    path : str or path-like
        Path of the ``.npz`` file.
    return_classes : bool, default=False
        Also return the class index of each factor (with ``return_X_y=True``).
    return_X_y : bool, default=True
        Return ``(X, factors)`` (or ``(X, factors, classes)``) rather than a
        :class:`~sklearn.utils.Bunch`, as :func:`make_sprites` does.
    as_frame : bool, default=False
        Return pandas DataFrames with named columns, as :func:`make_sprites` does.

    Returns
    -------
    X : ndarray or DataFrame of shape (n_samples, 4096), dtype uint8
        Binary images, flattened row by row.
    factors : ndarray or DataFrame of shape (n_samples, 5), dtype float64
        Factor values: shape, scale, orientation, posX, posY.
    classes : ndarray or DataFrame of shape (n_samples, 5), dtype int64
        Class index of each factor. Only returned if ``return_classes`` is True.
    data : :class:`~sklearn.utils.Bunch`
        Instead of the tuple when ``return_X_y=False``: the attributes listed
        in :func:`make_sprites`.

    References
    ----------
    Matthey, L., Higgins, I., Hassabis, D. and Lerchner, A. (2017). dSprites:
    Disentanglement testing Sprites dataset. https://github.com/deepmind/dsprites-dataset

    Examples
    --------
    A two-image archive in the dSprites format, written here for the example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_betavae.datasets import load_dsprites
    >>> classes = np.array([[0, 0, 0, 0, 0, 0], [0, 2, 5, 39, 31, 31]])
    >>> values = np.array([[1, 1, 0.5, 0.0, 0.0, 0.0], [1, 3, 1.0, 6.1, 1.0, 1.0]])
    >>> path = os.path.join(tempfile.mkdtemp(), "dsprites.npz")
    >>> np.savez(path, imgs=np.zeros((2, 64, 64), dtype=np.uint8),
    ...          latents_values=values, latents_classes=classes)
    >>> X, factors = load_dsprites(path)
    >>> X.shape, factors.shape
    ((2, 4096), (2, 5))
    >>> factors[1]
    array([3. , 1. , 6.1, 1. , 1. ])
    """
    with np.load(path, allow_pickle=False) as archive:
        missing = {"imgs", "latents_values", "latents_classes"} - set(archive.files)
        if missing:
            raise ValueError(f"{path} is not a dSprites archive: keys {sorted(missing)} missing.")
        images = archive["imgs"]
        values = archive["latents_values"]
        classes = archive["latents_classes"]
    if images.ndim != 3 or values.shape != (len(images), 6) or classes.shape != values.shape:
        raise ValueError(
            "Expected imgs of shape (n, height, width) and latents of shape (n, 6), got "
            f"{images.shape}, {values.shape} and {classes.shape}."
        )
    return _sprites_output(
        images.reshape(len(images), -1).astype(np.uint8, copy=False),
        values[:, 1:].astype(np.float64),
        classes[:, 1:].astype(np.int64),
        image_shape=images.shape[1:],
        return_X_y=return_X_y,
        return_classes=return_classes,
        as_frame=as_frame,
        caller="load_dsprites",
        source=f"The dSprites archive {path} without its constant colour factor.",
    )
