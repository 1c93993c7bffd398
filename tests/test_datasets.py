"""make_sprites, SpritesSampler and load_dsprites."""

import ast
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.utils import Bunch

from sklearn_betavae.datasets import (
    SpritesSampler,
    _inside_sprite,
    load_dsprites,
    make_sprites,
)

PACKAGE = Path(__file__).resolve().parents[1] / "sklearn_betavae"
N_GRID = 3 * 6 * 40 * 32 * 32


def _brute_force_image(classes, image_size):
    """Test every pixel of the whole image against the documented geometry, no patches."""
    shape, scale, orientation, pos_x, pos_y = classes
    radius = 0.2 * np.linspace(0.5, 1, 6)[scale] * image_size
    angle = 2 * np.pi * orientation / 40
    centre_x = image_size / 4 + (2 * pos_x + 1) * image_size / 128
    centre_y = image_size / 4 + (2 * pos_y + 1) * image_size / 128
    rows, cols = np.indices((image_size, image_size)) + 0.5
    dx, dv = (cols - centre_x) / radius, -(rows - centre_y) / radius
    u = np.cos(angle) * dx + np.sin(angle) * dv
    v = np.cos(angle) * dv - np.sin(angle) * dx
    return _inside_sprite(np.array(shape), u, v).astype(np.uint8).ravel()


def test_make_sprites_full_grid_order_and_content():
    # The whole grid at 16 px: fixed row-major order (posY fastest), binary, no empty image.
    X, factors, classes = make_sprites(image_size=16, return_classes=True)
    assert X.shape == (N_GRID, 256) and X.dtype == np.uint8
    assert factors.shape == (N_GRID, 5) and factors.dtype == np.float64
    assert_array_equal(classes, np.indices((3, 6, 40, 32, 32)).reshape(5, -1).T)
    assert set(np.unique(X)) == {0, 1}
    assert X.sum(axis=1).min() > 0
    assert_array_equal(np.unique(factors[:, 0]), [1, 2, 3])
    assert_array_equal(np.unique(factors[:, 1]), np.linspace(0.5, 1, 6))
    assert_array_equal(np.unique(factors[:, 2]), 2 * np.pi * np.arange(40) / 40)
    assert_array_equal(np.unique(factors[:, 3]), np.linspace(0, 1, 32))
    # Spot checks against a renderer that tests every pixel of the image.
    for index in np.random.RandomState(0).randint(N_GRID, size=50):
        assert_array_equal(X[index], _brute_force_image(classes[index], 16))


@pytest.mark.parametrize("image_size", [16, 23, 32, 64])
def test_render_matches_brute_force(image_size):
    # Patches pasted at integer offsets give exactly the per-pixel rendering, any image size.
    sampler = SpritesSampler(image_size=image_size)
    classes = sampler.sample_classes(60, random_state=image_size)
    classes[:4, 3:] = [[0, 0], [31, 31], [0, 31], [31, 0]]  # the corners of the grid
    X = sampler.render(classes)
    for image, combination in zip(X, classes):
        assert_array_equal(image, _brute_force_image(combination, image_size))


def test_sprites_translate_one_pixel_per_position_at_64():
    # At 64 px one position step is one pixel: the next posX is the image shifted right.
    sampler = SpritesSampler(image_size=64)
    base = np.array([[2, 5, 7, 10, 12]])
    image = sampler.render(base).reshape(64, 64)
    right = sampler.render(base + [0, 0, 0, 1, 0]).reshape(64, 64)
    down = sampler.render(base + [0, 0, 0, 0, 1]).reshape(64, 64)
    assert_array_equal(right, np.roll(image, 1, axis=1))
    assert_array_equal(down, np.roll(image, 1, axis=0))


def test_sprites_centroid_area_and_rotation():
    # Centroid follows posX (columns) and posY (rows), area grows with scale, 90 deg is rot90.
    sampler = SpritesSampler(image_size=64)
    rows, cols = np.indices((64, 64)).reshape(2, -1)
    moving = np.array([[1, 3, 4, k, 31 - k] for k in range(32)])
    X = sampler.render(moving).astype(float)
    centroid_x = X @ cols / X.sum(1)
    centroid_y = X @ rows / X.sum(1)
    assert np.all(np.diff(centroid_x) > 0) and np.all(np.diff(centroid_y) < 0)
    # The sprite centre is the cell centre 16.5 + k (pixel k + 16's centre).
    assert np.abs(centroid_x + 0.5 - (16.5 + np.arange(32))).max() < 0.6
    for shape in range(3):
        areas = sampler.render([[shape, s, 0, 15, 15] for s in range(6)]).sum(1)
        assert np.all(np.diff(areas) > 0)
        # A sprite centred on pixel (31, 31): a quarter turn counter-clockwise is np.rot90
        # of the odd-sized window centred on that pixel.
        upright, turned = sampler.render([[shape, 5, 3, 15, 15], [shape, 5, 13, 15, 15]])
        window = np.s_[11:52, 11:52]
        assert upright.sum() == upright.reshape(64, 64)[window].sum()
        assert_array_equal(
            turned.reshape(64, 64)[window], np.rot90(upright.reshape(64, 64)[window])
        )


def test_make_sprites_random_sample_is_reproducible_and_consistent():
    # An integer draws that many combinations; same seed same data; outputs agree with the sampler.
    X, factors, classes = make_sprites(500, image_size=32, random_state=3, return_classes=True)
    X2, factors2 = make_sprites(500, image_size=32, random_state=3)
    X3, _ = make_sprites(500, image_size=32, random_state=4)
    assert X.shape == (500, 1024)
    assert_array_equal(X, X2)
    assert_array_equal(factors, factors2)
    assert not np.array_equal(X, X3)
    sampler = SpritesSampler(image_size=32)
    assert_array_equal(X, sampler.render(classes))
    assert_array_equal(factors, sampler.values(classes))
    # Every factor is drawn over its whole range.
    assert_array_equal(classes.max(axis=0), np.array(sampler.n_values) - 1)
    assert make_sprites(0, image_size=16)[0].shape == (0, 256)


def test_make_sprites_bunch_holds_arrays_and_names():
    # return_X_y=False gives load_digits' layout: data, target, images, names, DESCR, classes.
    X, factors, classes = make_sprites(20, image_size=16, random_state=0, return_classes=True)
    sprites = make_sprites(20, image_size=16, random_state=0, return_X_y=False)
    assert isinstance(sprites, Bunch)
    assert_array_equal(sprites.data, X)
    assert_array_equal(sprites.target, factors)
    assert_array_equal(sprites.classes, classes)
    assert sprites.frame is None
    assert sprites.images.shape == (20, 16, 16)
    assert np.shares_memory(sprites.images, sprites.data)
    assert_array_equal(sprites.images[3], X[3].reshape(16, 16))
    assert sprites.feature_names[:2] == ["pixel_0_0", "pixel_0_1"]
    assert sprites.feature_names[16] == "pixel_1_0" and len(sprites.feature_names) == 256
    assert sprites.target_names == ["shape", "scale", "orientation", "posX", "posY"]
    assert "16 x 16 pixels" in sprites.DESCR and "posY" in sprites.DESCR


def test_make_sprites_as_frame_names_columns_without_copying():
    # as_frame=True wraps the same values in DataFrames named by pixel and factor.
    pd = pytest.importorskip("pandas")
    X, factors, classes = make_sprites(30, image_size=16, random_state=1, return_classes=True)
    X_df, factors_df, classes_df = make_sprites(
        30, image_size=16, random_state=1, return_classes=True, as_frame=True
    )
    assert isinstance(X_df, pd.DataFrame) and isinstance(factors_df, pd.DataFrame)
    assert list(X_df.columns[:3]) == ["pixel_0_0", "pixel_0_1", "pixel_0_2"]
    assert list(factors_df.columns) == ["shape", "scale", "orientation", "posX", "posY"]
    assert list(classes_df.columns) == list(factors_df.columns)
    assert_array_equal(X_df.to_numpy(), X)
    assert_array_equal(factors_df.to_numpy(), factors)
    assert_array_equal(classes_df.to_numpy(), classes)
    assert X_df.dtypes.unique().tolist() == [np.uint8]
    assert classes_df.dtypes.unique().tolist() == [np.int64]
    sprites = make_sprites(30, image_size=16, random_state=1, return_X_y=False, as_frame=True)
    assert sprites.frame.shape == (30, 256 + 5)
    assert list(sprites.frame.columns) == sprites.feature_names + sprites.target_names
    assert_array_equal(sprites.frame["posX"], factors[:, 3])
    assert_array_equal(sprites.data.to_numpy(), X)


def test_make_sprites_as_frame_without_pandas_names_the_fix(monkeypatch):
    # Without pandas, as_frame=True raises an ImportError saying what to install.
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="as_frame=True requires pandas"):
        make_sprites(5, image_size=16, as_frame=True)
    assert make_sprites(5, image_size=16)[0].shape == (5, 256)


def test_render_into_out_array():
    # render(out=...) overwrites a preallocated array (stale pixels cleared) and returns it.
    sampler = SpritesSampler(image_size=16)
    classes = sampler.sample_classes(10, random_state=0)
    out = np.ones((10, 256), dtype=np.uint8)
    assert sampler.render(classes, out=out) is out
    assert_array_equal(out, sampler.render(classes))
    with pytest.raises(ValueError, match="out must be"):
        sampler.render(classes, out=np.zeros((10, 256)))


def test_sprites_invalid_arguments():
    # Bad sizes and factor classes raise errors that name the problem.
    with pytest.raises(ValueError, match="at least 16"):
        SpritesSampler(image_size=8)
    with pytest.raises(ValueError, match="integer"):
        make_sprites(10, image_size=32.0)
    sampler = SpritesSampler(image_size=16)
    with pytest.raises(ValueError, match="out of range"):
        sampler.render([[3, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="shape"):
        sampler.render([[0, 0, 0, 0]])
    with pytest.raises(ValueError, match="integers"):
        sampler.render([[0.0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="n_samples"):
        make_sprites(-1, image_size=16)
    with pytest.raises(ValueError, match="n_samples must be a non-negative integer, got True"):
        make_sprites(True, image_size=16)


def _write_dsprites(path, n=20, seed=0):
    """A small archive in the layout of dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz."""
    rng = np.random.RandomState(seed)
    classes = np.column_stack([np.zeros(n, int), rng.randint(3, size=n), rng.randint(6, size=n),
                               rng.randint(40, size=n), rng.randint(32, size=n),
                               rng.randint(32, size=n)])
    values = np.column_stack([np.ones(n), classes[:, 1] + 1.0,
                              np.linspace(0.5, 1, 6)[classes[:, 2]],
                              np.linspace(0, 2 * np.pi, 40)[classes[:, 3]],
                              np.linspace(0, 1, 32)[classes[:, 4]],
                              np.linspace(0, 1, 32)[classes[:, 5]]])
    imgs = rng.randint(2, size=(n, 64, 64)).astype(np.uint8)
    metadata = np.array({"description": "pickled, as in the original"}, dtype=object)
    np.savez_compressed(path, imgs=imgs, latents_values=values, latents_classes=classes,
                        metadata=metadata)
    return imgs, values, classes


def test_load_dsprites_reads_the_archive_format(tmp_path):
    # Images flattened, colour column dropped, same tuple and Bunch as make_sprites; no pickles.
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    imgs, values, classes = _write_dsprites(path)
    X, factors, factor_classes = load_dsprites(path, return_classes=True)
    assert X.shape == (20, 4096) and X.dtype == np.uint8
    assert_array_equal(X, imgs.reshape(20, -1))
    assert_array_equal(factors, values[:, 1:])
    assert_array_equal(factor_classes, classes[:, 1:])
    X2, factors2 = load_dsprites(str(path))
    assert_array_equal(X2, X)
    assert_array_equal(factors2, factors)
    dsprites = load_dsprites(path, return_X_y=False)
    assert dsprites.images.shape == (20, 64, 64)
    assert_array_equal(dsprites.data, X)
    assert_array_equal(dsprites.classes, classes[:, 1:])
    assert dsprites.target_names == ["shape", "scale", "orientation", "posX", "posY"]


def test_load_dsprites_rejects_other_archives(tmp_path):
    # An archive without the dSprites keys or with wrong shapes raises a ValueError.
    path = tmp_path / "other.npz"
    np.savez(path, imgs=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="latents_classes"):
        load_dsprites(path)
    np.savez(path, imgs=np.zeros((2, 64, 64), np.uint8), latents_values=np.zeros((2, 5)),
             latents_classes=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="shape"):
        load_dsprites(path)


def _imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_datasets_and_metrics_import_no_torch_nor_estimators():
    # datasets and metrics depend on numpy, scipy, scikit-learn and the standard library only.
    # pandas is imported on demand, for as_frame=True only.
    allowed_roots = {"numpy", "scipy", "sklearn", "numbers", "warnings", "inspect", "pandas"}
    files = [PACKAGE / "datasets.py", *sorted((PACKAGE / "metrics").glob("*.py"))]
    assert len(files) > 2
    for path in files:
        for module, level in _imported_modules(path):
            if level == 0:
                assert module.split(".")[0] in allowed_roots, (path.name, module)
            else:
                # Relative imports stay inside metrics/ (level 1 from a metrics module).
                assert path.parent.name == "metrics" and level == 1, (path.name, module)


@pytest.mark.slow
def test_make_sprites_full_grid_at_64():
    # The default call: the whole 64 x 64 grid (2.8 GiB), checked against per-pixel rendering.
    X, factors = make_sprites()
    assert X.shape == (N_GRID, 4096) and X.dtype == np.uint8
    classes = np.indices((3, 6, 40, 32, 32)).reshape(5, -1).T
    for index in np.random.RandomState(1).randint(N_GRID, size=30):
        assert_array_equal(X[index], _brute_force_image(classes[index], 64))
    assert X.sum(axis=1).min() > 0
