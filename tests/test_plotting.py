"""Figures of sklearn_betavae.plotting: the Display objects and the plot_* shorthands."""

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
from sklearn_betavae.plotting import (
    LatentTraversalDisplay,
    RateDistortionDisplay,
    ReconstructionDisplay,
    TrainingHistoryDisplay,
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
        ({"dimensions": True}, "dimensions must be an int"),
        ({"dimensions": [1.5]}, "dimensions must be integer indices"),
        ({"n_steps": 0}, "n_steps"),
        ({"limit": -1.0}, "limit"),
        ({"limit": np.inf}, "limit must be a positive finite number"),
        ({"limit": np.nan}, "limit must be a positive finite number"),
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
    # Fewer samples than n_images: all of them are shown.
    assert len(plot_reconstructions(vae, X[:3]).axes) == 6
    with pytest.raises(ValueError, match="n_images must be a positive integer"):
        plot_reconstructions(vae, X, n_images=0)


def test_traversals_check_the_sample_like_the_estimator(vae, X):
    # A sample with the wrong number of features gets the estimator's own message, and
    # more than one row is refused by name.
    with pytest.raises(ValueError, match="X has 10 features, but BetaVAE is expecting 64"):
        plot_latent_traversals(vae, X[0, :10])
    with pytest.raises(ValueError, match=r"x must be one sample.*\(2, 64\)"):
        plot_latent_traversals(vae, X[:2])


def test_figures_pass_dataframes_with_their_column_names(X):
    # A model fitted on a DataFrame (conditions named by column) draws from a DataFrame row
    # or a DataFrame without scikit-learn's "X does not have valid feature names" warning,
    # and with the same figures as from the arrays.
    pd = pytest.importorskip("pandas")
    import warnings

    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    frame["even"] = (np.arange(len(X)) % 2).astype(float)
    vae = BetaVAE(n_components=2, hidden_layer_sizes=(16,), max_epochs=1, random_state=0,
                  condition_features=["even"]).fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traversal = LatentTraversalDisplay.from_estimator(vae, frame.iloc[3], n_steps=2)
        reconstruction = ReconstructionDisplay.from_estimator(vae, frame, n_images=2)
    code = vae.transform(frame.iloc[3:4])[0]
    code[0] = traversal.values[0]
    assert_allclose(traversal.decoded[list(traversal.dimensions).index(0), 0],
                    vae.inverse_transform(code[None])[0, :64], rtol=1e-6)
    assert_allclose(reconstruction.X, X[:2])


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


def test_training_history_with_validation_on_some_epochs_only(X):
    # Early stopping turned on for a warm-started fit: the validation curves have NaN for
    # the epochs trained without it, instead of failing on mismatched lengths.
    vae = BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=2, warm_start=True,
                  random_state=0).fit(X)
    vae.set_params(early_stopping=True).fit(X)
    display = TrainingHistoryDisplay.from_estimator(vae)
    assert len(display.valid_loss) == len(display.loss) == 4
    assert np.isnan(display.valid_loss[:2]).all()
    assert_allclose(display.valid_loss[2:], vae.history_[2:, "valid_loss"])


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



def test_latent_traversal_display_stores_what_it_draws(vae, X):
    # from_estimator stores the decoded sweeps; axes_[i, j] shows decoded[i, j].
    display = LatentTraversalDisplay.from_estimator(vae, X[2], n_steps=4, image_shape=(8, 8))
    assert display.decoded.shape == (3, 4, 64)
    assert_allclose(display.values, np.linspace(-3, 3, 4))
    assert display.axes_.shape == (3, 4)
    assert display.figure_ is display.axes_[0, 0].figure
    assert list(display.figure_.axes) == list(display.axes_.ravel())
    code = vae.transform(X[2:3])[0]
    for i, d in enumerate(display.dimensions):
        assert _row_dimension(display.axes_[i, 0]) == d
        z = code.copy()
        z[d] = -3.0
        assert_allclose(display.decoded[i, 0], vae.inverse_transform(z[None])[0], rtol=1e-6)
        for j in range(4):
            assert_allclose(_image(display.axes_[i, j]), display.decoded[i, j].reshape(8, 8))


def test_latent_traversal_display_from_arrays_without_estimator():
    # The constructor takes values computed elsewhere; plot draws them, labelled with KL.
    decoded = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    display = LatentTraversalDisplay(
        decoded=decoded, values=[-1.0, 0.0, 1.0], dimensions=[4, 1],
        kl_per_dim=[0.0, 0.5, 0.0, 0.0, 2.25], image_shape=(2, 2),
    )
    assert display.plot(cmap="viridis") is display
    assert display.axes_.shape == (2, 3)
    assert_allclose(_image(display.axes_[1, 2]), decoded[1, 2].reshape(2, 2))
    assert display.axes_[0, 0].get_ylabel() == "z4\nKL 2.25"
    assert display.axes_[1, 0].get_ylabel() == "z1\nKL 0.50"
    assert [ax.get_title() for ax in display.axes_[0]] == ["-1.0", "+0.0", "+1.0"]


def test_grid_display_takes_the_place_of_one_axes(vae, X):
    # A single subplot passed as ax is replaced by the grid, inside its bounds.
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
    bounds = right.get_position()
    display = LatentTraversalDisplay.from_estimator(
        vae, X[0], dimensions=2, n_steps=3, image_shape=(8, 8), ax=right
    )
    assert display.figure_ is fig
    assert right not in fig.axes and left in fig.axes
    assert len(fig.axes) == 1 + 2 * 3
    for ax in display.axes_.ravel():
        box = ax.get_subplotspec().get_position(fig)
        assert bounds.x0 - 1e-9 <= box.x0 and box.x1 <= bounds.x1 + 1e-9


def test_grid_display_draws_on_given_axes_and_checks_their_number(vae, X):
    # An array of exactly n_rows * n_cols axes is used as is; another number is an error.
    fig, axes = plt.subplots(2, 4)
    display = ReconstructionDisplay.from_estimator(vae, X, n_images=4, image_shape=(8, 8),
                                                   ax=axes)
    assert display.axes_.shape == (2, 4)
    assert all(a is b for a, b in zip(display.axes_.ravel(), axes.ravel()))
    assert_allclose(_image(axes[0, 3]), X[3].reshape(8, 8))
    with pytest.raises(ValueError, match="ax must be None, one Axes or 8 Axes"):
        ReconstructionDisplay.from_estimator(vae, X, n_images=4, ax=axes[0])
    free = plt.figure().add_axes((0.1, 0.1, 0.8, 0.8))
    with pytest.raises(ValueError, match="ax must be a subplot"):
        ReconstructionDisplay.from_estimator(vae, X, n_images=4, ax=free)


def test_reconstruction_display_stores_originals_and_reconstructions(vae, X):
    # X holds the first n_images samples, X_reconstructed their decoded posterior means.
    display = ReconstructionDisplay.from_estimator(vae, X, n_images=3, image_shape=(8, 8))
    assert_allclose(display.X, X[:3])
    assert_allclose(display.X_reconstructed, vae.inverse_transform(vae.transform(X[:3])))
    assert display.axes_.shape == (2, 3)
    with pytest.raises(ValueError, match="same shape"):
        ReconstructionDisplay(X=X[:3], X_reconstructed=X[:2]).plot()


def test_training_history_display_reads_history(vae):
    # The attributes are the history's columns; the panels draw them against the epochs.
    display = TrainingHistoryDisplay.from_estimator(vae)
    assert_allclose(display.epochs, np.arange(1, vae.n_iter_ + 1))
    assert_allclose(display.loss, vae.history_[:, "train_loss"])
    assert_allclose(display.rate, vae.history_[:, "train_kl"])
    assert_allclose(display.distortion, vae.history_[:, "train_reconstruction"])
    assert display.kl_per_dim.shape == (vae.n_iter_, vae.n_components)
    assert display.valid_loss is None
    assert display.axes_.shape == (2, 2)
    (line,) = display.axes_[0, 1].get_lines()
    assert_allclose(line.get_ydata(), display.rate)


def test_training_history_display_from_arrays_draws_validation_dashed():
    # Values from elsewhere: train curves solid, validation dashed, one KL line per dimension.
    epochs = np.arange(1, 4)
    display = TrainingHistoryDisplay(
        epochs=epochs, loss=[3.0, 2.0, 1.0], rate=[0.1, 0.2, 0.3], distortion=[2.9, 1.8, 0.7],
        kl_per_dim=np.ones((3, 5)), valid_loss=[3.5, 2.5, 1.5],
    ).plot()
    train, valid = display.axes_[0, 0].get_lines()
    assert train.get_linestyle() == "-" and valid.get_linestyle() == "--"
    assert_allclose(valid.get_ydata(), [3.5, 2.5, 1.5])
    assert len(display.axes_[0, 1].get_lines()) == 1
    assert len(display.axes_[1, 1].get_lines()) == 5


def test_rate_distortion_display_compares_estimators_on_one_axes(X):
    # One point per from_estimator call at the mean rate and distortion; names in the legend.
    strong = BetaVAE(n_components=3, hidden_layer_sizes=(32,), beta=8.0, max_epochs=4,
                     random_state=0).fit(X)
    weak = BetaVAE(n_components=3, hidden_layer_sizes=(32,), max_epochs=4, random_state=0).fit(X)
    first = RateDistortionDisplay.from_estimator(weak, X, name="beta=1")
    second = RateDistortionDisplay.from_estimator(strong, X, name="beta=8", ax=first.ax_)
    assert second.ax_ is first.ax_ and second.figure_ is first.figure_
    for display, model in [(first, weak), (second, strong)]:
        rate, distortion = model.rate_distortion(X)
        assert_allclose(display.rate, [rate.mean()])
        assert_allclose(display.distortion, [distortion.mean()])
        assert_allclose(display.errorbar_.lines[0].get_xydata(), [[rate.mean(), distortion.mean()]])
        assert display.line_ is None
    legend = [t.get_text() for t in first.ax_.get_legend().get_texts()]
    assert legend == ["beta=1", "beta=8"]
    assert RateDistortionDisplay.from_estimator(weak, X).name == "BetaVAE"


def test_rate_distortion_display_from_cv_results_connects_candidates():
    # from_cv_results negates the reconstruction score and joins the points by rate.
    cv_results = {
        "mean_test_rate": np.array([12.0, 3.0]),
        "mean_test_reconstruction": np.array([-20.0, -31.0]),
        "params": [{"beta": 1.0}, {"beta": 4.0}],
    }
    display = RateDistortionDisplay.from_cv_results(cv_results, connect=True, name="sweep")
    assert_allclose(display.distortion, [20.0, 31.0])
    assert display.labels == ["beta=1", "beta=4"]
    assert_allclose(display.line_.get_xdata(), [3.0, 12.0])
    assert [t.get_text() for t in display.ax_.get_legend().get_texts()] == ["sweep"]


def test_plot_functions_draw_on_a_given_figure(vae, X):
    # fig= is cleared and reused: the shorthands return it holding only the new axes.
    fig = plt.figure()
    fig.add_subplot().plot([0, 1])
    assert plot_latent_traversals(vae, X[0], n_steps=2, image_shape=(8, 8), fig=fig) is fig
    assert len(fig.axes) == 3 * 2
    assert plot_training_history(vae, fig=fig) is fig
    assert [ax.get_title() for ax in fig.axes] == ["loss", "rate", "distortion",
                                                    "KL per dimension"]
    assert plot_reconstructions(vae, X, n_images=2, fig=fig) is fig
    assert len(fig.axes) == 4
