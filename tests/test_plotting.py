"""Figures of sklearn_betavae.plotting and the demo's --figure option."""

import importlib
import re
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_digits

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sklearn_betavae import BetaVAE
from sklearn_betavae.__main__ import main
from sklearn_betavae.plotting import (
    plot_latent_traversals,
    plot_rate_distortion,
    plot_reconstructions,
    plot_training_history,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:150] / 16.0


@pytest.fixture(scope="module")
def vae(X):
    return BetaVAE(n_components=3, hidden_layer_sizes=(32,), max_epochs=4, random_state=0).fit(X)


def _image(ax):
    images = ax.get_images()
    assert len(images) == 1
    return np.asarray(images[0].get_array())


def _row_dimension(ax):
    return int(re.match(r"z(\d+)", ax.get_ylabel()).group(1))


def test_latent_traversals_decode_the_swept_codes(vae, X, tmp_path):
    # Row i, column j shows the decoder mean of x's code with z_d set to the j-th sweep value.
    n_steps, limit = 5, 2.0
    fig = plot_latent_traversals(vae, X[7], n_steps=n_steps, limit=limit, image_shape=(8, 8))
    fig.savefig(tmp_path / "traversals.png")
    assert (tmp_path / "traversals.png").stat().st_size > 0
    assert len(fig.axes) == 3 * n_steps
    axes = np.asarray(fig.axes).reshape(3, n_steps)
    kl = np.asarray(vae.history_[-1, "train_kl_per_dim"])
    dims = [_row_dimension(row[0]) for row in axes]
    assert dims == list(np.argsort(-kl, kind="stable"))  # most informative first
    code = vae.transform(X[7:8])[0]
    for row, d in zip(axes, dims):
        for j, ax in enumerate(row):
            z = code.copy()
            z[d] = np.linspace(-limit, limit, n_steps)[j]
            expected = vae.inverse_transform(z[None])[0].reshape(8, 8)
            assert _image(ax).shape == (8, 8)
            assert_allclose(_image(ax), expected, rtol=1e-6)
    assert [ax.get_title() for ax in axes[0]] == ["-2.0", "-1.0", "+0.0", "+1.0", "+2.0"]


def test_latent_traversals_dimension_selection(vae, X):
    # An integer keeps the k highest-KL dimensions; a list keeps its order without sorting.
    kl = np.asarray(vae.history_[-1, "train_kl_per_dim"])
    fig = plot_latent_traversals(vae, X[0], dimensions=2, n_steps=3, image_shape=(8, 8))
    assert len(fig.axes) == 6
    assert [_row_dimension(ax) for ax in fig.axes[::3]] == list(np.argsort(-kl)[:2])
    fig = plot_latent_traversals(
        vae, X[0], dimensions=[2, 0], n_steps=3, sort_by_kl=False, image_shape=(8, 8)
    )
    assert [_row_dimension(ax) for ax in fig.axes[::3]] == [2, 0]


def test_latent_traversals_without_image_shape_draw_lines(vae, X):
    # Without an image shape each decoded sample is a line over its 64 features.
    fig = plot_latent_traversals(vae, X[0], dimensions=[1], n_steps=4, sort_by_kl=False)
    code = vae.transform(X[:1])[0]
    for j, ax in enumerate(fig.axes):
        assert not ax.get_images()
        (line,) = ax.get_lines()
        z = code.copy()
        z[1] = np.linspace(-3, 3, 4)[j]
        assert_allclose(line.get_ydata(), vae.inverse_transform(z[None])[0], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (4, 4)}, "holds 16 values"),
        ({"image_shape": (2, 4, 8)}, "image_shape must be"),
        ({"dimensions": [3]}, "dimensions must be indices"),
        ({"dimensions": 4}, "between 1 and n_components"),
        ({"n_steps": 0}, "n_steps"),
        ({"limit": -1.0}, "limit"),
    ],
)
def test_latent_traversals_invalid_arguments(vae, X, kwargs, match):
    # Bad shapes, dimensions and sweep settings raise a ValueError naming the problem.
    with pytest.raises(ValueError, match=match):
        plot_latent_traversals(vae, X[0], **kwargs)


def test_reconstructions_show_originals_above_reconstructions(vae, X, tmp_path):
    # Top row: the first n_images samples; bottom row: inverse_transform(transform(X)).
    fig = plot_reconstructions(vae, X, n_images=4, image_shape=(8, 8))
    fig.savefig(tmp_path / "reconstructions.png")
    assert len(fig.axes) == 8
    expected = vae.inverse_transform(vae.transform(X[:4]))
    for j in range(4):
        assert_allclose(_image(fig.axes[j]), X[j].reshape(8, 8))
        assert_allclose(_image(fig.axes[4 + j]), expected[j].reshape(8, 8), rtol=1e-6)
    assert fig.axes[0].get_ylabel() == "original"
    assert fig.axes[4].get_ylabel() == "reconstruction"
    with pytest.raises(ValueError, match="n_images"):
        plot_reconstructions(vae, X[:3], n_images=4)


def test_conditional_model_figures_draw_the_modelled_columns(X):
    # For a model with conditions, traversals and reconstructions draw the data columns,
    # decoded under the sample's own conditions; the condition columns are not drawn.
    Xc = np.hstack([X, np.eye(2)[np.arange(len(X)) % 2]])
    vae = BetaVAE(n_components=2, hidden_layer_sizes=(16,), max_epochs=1, random_state=0,
                  condition_features=[64, 65]).fit(Xc)
    fig = plot_latent_traversals(vae, Xc[3], n_steps=2, sort_by_kl=False, image_shape=(8, 8))
    code = vae.transform(Xc[3:4])[0]
    code[0] = -3.0
    assert_allclose(_image(fig.axes[0]), vae.inverse_transform(code[None])[0, :64].reshape(8, 8),
                    rtol=1e-6)
    fig = plot_reconstructions(vae, Xc, n_images=2, image_shape=(8, 8))
    assert_allclose(_image(fig.axes[0]), X[0].reshape(8, 8))


def test_training_history_curves_follow_history(vae, tmp_path):
    # One point per epoch in each curve, equal to the history's values; one KL curve per dim.
    fig = plot_training_history(vae)
    fig.savefig(tmp_path / "history.png")
    assert len(fig.axes) == 4
    keys = ["train_loss", "train_kl", "train_reconstruction"]
    for ax, key in zip(fig.axes[:3], keys):
        (line,) = ax.get_lines()
        assert_allclose(line.get_xdata(), np.arange(1, vae.n_iter_ + 1))
        assert_allclose(line.get_ydata(), vae.history_[:, key])
    kl_lines = fig.axes[3].get_lines()
    assert len(kl_lines) == vae.n_components
    kl = np.asarray(vae.history_[:, "train_kl_per_dim"])
    for d, line in enumerate(kl_lines):
        assert_allclose(line.get_ydata(), kl[:, d])
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert "nats" in fig.axes[1].get_ylabel()


def test_training_history_draws_validation_curves(X):
    # With early stopping, each of the first three panels gets a dashed valid_ curve.
    vae = BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=3, early_stopping=True,
                  random_state=0).fit(X)
    fig = plot_training_history(vae)
    for ax, key in zip(fig.axes[:3], ["valid_loss", "valid_kl", "valid_reconstruction"]):
        _train, valid = ax.get_lines()
        assert valid.get_linestyle() == "--"
        assert_allclose(valid.get_ydata(), vae.history_[:, key])


def test_rate_distortion_from_arrays(tmp_path):
    # Points at (rate, distortion), labelled; connect joins them in order of rate.
    rate, distortion = [8.0, 2.0, 20.0], [25.0, 40.0, 18.0]
    ax = plot_rate_distortion(rate, distortion, labels=["b", "a", "c"], connect=True, label="set")
    ax.figure.savefig(tmp_path / "rd.png")
    points, curve = ax.get_lines()
    assert_allclose(curve.get_xdata(), [2.0, 8.0, 20.0])
    assert_allclose(curve.get_ydata(), [40.0, 25.0, 18.0])
    assert_allclose(points.get_xdata(), rate)
    assert_allclose(points.get_ydata(), distortion)
    assert [t.get_text() for t in ax.texts] == ["b", "a", "c"]
    assert [t.get_text() for t in ax.legend().get_texts()] == ["set"]
    assert ax.get_xlabel().startswith("rate") and ax.get_ylabel().startswith("distortion")


def test_rate_distortion_from_cv_results():
    # The distortion is minus the reconstruction score; labels name the varying parameters.
    cv_results = {
        "mean_test_rate": np.array([12.0, 3.0]),
        "std_test_rate": np.array([0.5, 0.2]),
        "mean_test_reconstruction": np.array([-20.0, -31.0]),
        "std_test_reconstruction": np.array([1.0, 1.5]),
        "params": [{"beta": 1.0, "free_bits": 0.0}, {"beta": 4.0, "free_bits": 0.0}],
    }
    ax = plot_rate_distortion(cv_results=cv_results)
    (points,) = ax.get_lines()
    assert_allclose(points.get_xdata(), [12.0, 3.0])
    assert_allclose(points.get_ydata(), [20.0, 31.0])
    assert [t.get_text() for t in ax.texts] == ["beta=1", "beta=4"]
    assert len(ax.collections) == 2  # horizontal and vertical error bars
    with pytest.raises(ValueError, match="mean_test_reconstruction"):
        plot_rate_distortion(cv_results={"mean_test_rate": [1.0]})
    with pytest.raises(ValueError, match="not both"):
        plot_rate_distortion([1.0], [2.0], cv_results=cv_results)
    with pytest.raises(ValueError, match="same length"):
        plot_rate_distortion([1.0, 2.0], [2.0])


def test_plotting_without_matplotlib_raises_clear_import_error(monkeypatch):
    # Hiding matplotlib makes importing the module fail with the install hint.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "sklearn_betavae.plotting")
    with pytest.raises(ImportError, match=re.escape("pip install sklearn-betavae[plotting]")):
        importlib.import_module("sklearn_betavae.plotting")


_TINY_DEMO = ["demo", "--n-components", "2", "--max-epochs", "1", "--verbose", "0"]


def test_demo_saves_latent_traversals(tmp_path, capsys):
    # --figure writes a PNG of the traversals after the usual report.
    path = tmp_path / "traversals.png"
    assert main([*_TINY_DEMO, "--figure", str(path)]) == 0
    out = capsys.readouterr().out
    assert "held-out ELBO" in out and "test accuracy" in out
    assert f"saved to {path}" in out
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_demo_reports_unwritable_figure_path(tmp_path, capsys):
    # A figure path in a missing directory gives exit status 1 and an error message.
    path = tmp_path / "missing" / "traversals.png"
    assert main([*_TINY_DEMO, "--figure", str(path)]) == 1
    assert "cannot save the figure" in capsys.readouterr().err
    assert not path.exists()


def test_demo_figure_skipped_without_matplotlib(tmp_path, capsys, monkeypatch):
    # Without matplotlib the demo still succeeds and says why there is no figure.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.delitem(sys.modules, "sklearn_betavae.plotting")
    path = tmp_path / "traversals.png"
    assert main([*_TINY_DEMO, "--figure", str(path)]) == 0
    out = capsys.readouterr().out
    assert "held-out ELBO" in out
    assert "skipping the figure" in out and "pip install sklearn-betavae[plotting]" in out
    assert not path.exists()
