"""The command line: ``python -m sklearn_betavae``, its options and the demo."""

import os
import re
import sys

import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import sklearn_betavae
import sklearn_betavae.__main__ as cli
from sklearn_betavae import BetaVAE
from sklearn_betavae.__main__ import main

_TINY_DEMO = ["demo", "--n-components", "2", "--max-epochs", "1", "--verbose", "0"]


@pytest.fixture
def fits(monkeypatch):
    """Record every BetaVAE fitted through ``fit``, to count fits and inspect them."""
    fitted = []
    original_fit = BetaVAE.fit

    def recording_fit(self, X, y=None, **params):
        fitted.append(self)
        return original_fit(self, X, y, **params)

    monkeypatch.setattr(BetaVAE, "fit", recording_fit)
    return fitted


@pytest.fixture
def no_training(monkeypatch):
    """Make any attempt to run the demo fail the test: for errors due before training."""

    def fail(args):
        raise AssertionError("the demo started although the arguments were invalid")

    monkeypatch.setattr(cli, "_demo", fail)


def test_version_prints_the_package_version(capsys):
    # --version prints "sklearn-betavae <version>" and exits with status 0.
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"sklearn-betavae {sklearn_betavae.__version__}\n"


def test_top_level_help_shows_the_demo_options(capsys):
    # The top-level --help lists every demo option and usage examples, not only "demo".
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for option in ["--version", "--n-components", "--beta", "--max-epochs", "--device",
                   "--random-state", "--verbose", "--figure"]:
        assert option in out
    assert "python -m sklearn_betavae demo --figure traversals.png" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_no_command_prints_help_and_exits_2(capsys):
    # Without a command there is nothing to do: the help, and the status of a usage error.
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing/traversals.png", "does not exist"),
        ("traversals.txt", "unsupported format 'txt'"),
        ("traversals", "no file extension"),
        ("", "it is a directory"),
    ],
)
def test_bad_figure_path_rejected_before_training(tmp_path, capsys, no_training, name, message):
    # A --figure path that cannot be written is a usage error (status 2), before any fit.
    assert main(["demo", "--figure", os.path.join(tmp_path, name)]) == 2
    err = capsys.readouterr().err
    assert "argument --figure" in err and message in err


@pytest.mark.parametrize("option, value, message", [
    ("--n-components", "100", "100 is not between 1 and 64"),
    ("--n-components", "0", "0 is not between 1 and 64"),
    ("--max-epochs", "0", "0 is not at least 1"),
    ("--n-components", "two", "invalid int value: 'two'"),
])
def test_out_of_range_numbers_rejected_before_training(capsys, no_training, option, value,
                                                        message):
    # More components than the digits' 64 pixels (PCA, the comparison, cannot have them)
    # or no epoch: usage errors (status 2) before any fit, not a failure after training.
    assert main(["demo", option, value]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and message in err


def test_unwritable_figure_directory_rejected_before_training(
    tmp_path, capsys, monkeypatch, no_training
):
    # A directory without write permission is reported by name (os.access mocked: tests
    # may run as root, for whom every directory is writable).
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    assert main(["demo", "--figure", str(tmp_path / "traversals.png")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_demo_fits_once_and_reports_accuracy_of_its_codes(fits, capsys):
    # One fit, with the default verbose=1; the accuracy is that of the fitted model's codes.
    assert main(["demo", "--n-components", "2", "--max-epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert len(fits) == 1
    vae = fits[0]
    assert vae.verbose == 1 and vae.max_epochs == 2 and vae.n_components == 2
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.25, random_state=0
    )
    clf = LogisticRegression(max_iter=2000).fit(vae.transform(X_train), y_train)
    expected = clf.score(vae.transform(X_test), y_test)
    reported = float(re.search(r"BetaVAE (\d\.\d+), PCA \d\.\d+ test accuracy", out).group(1))
    assert reported == pytest.approx(expected, abs=5e-4)
    assert f"held-out ELBO       {vae.score(X_test):9.2f}" in out


def test_demo_reports_total_wall_time_after_everything(capsys):
    # The last line gives the wall time of the whole run, at least the training time.
    assert main(_TINY_DEMO) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(r"done in (\d+\.\d) s \(training (\d+\.\d) s\)", last)
    assert match is not None, last
    assert float(match.group(1)) >= float(match.group(2))


def test_demo_saves_latent_traversals(tmp_path, capsys):
    # --figure writes a PNG of the traversals after the usual report.
    matplotlib = pytest.importorskip("matplotlib")
    path = tmp_path / "traversals.png"
    assert main([*_TINY_DEMO, "--figure", str(path)]) == 0
    out = capsys.readouterr().out
    assert "held-out ELBO" in out and "test accuracy" in out
    assert f"saved to {path}" in out
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_demo_reports_a_failure_to_write_the_figure(tmp_path, capsys, monkeypatch):
    # A write that fails after training (disk full, ...) gives status 1 and the reason.
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def failing_savefig(self, *args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    path = tmp_path / "traversals.png"
    assert main([*_TINY_DEMO, "--figure", str(path)]) == 1
    assert "cannot save the figure: No space left on device" in capsys.readouterr().err
    assert not path.exists()


def test_demo_figure_skipped_without_matplotlib(tmp_path, capsys, monkeypatch):
    # Without matplotlib the demo says at once that it skips the figure, then succeeds.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)
    monkeypatch.delitem(sys.modules, "sklearn_betavae.plotting", raising=False)
    path = tmp_path / "traversals.png"
    assert main([*_TINY_DEMO, "--figure", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "skipping the figure" in lines[0] and "pip install sklearn-betavae[plotting]" in lines[0]
    assert any("held-out ELBO" in line for line in lines)
    assert not path.exists()
