"""Command line: ``python -m sklearn_betavae demo``.

The demo fits a :class:`~sklearn_betavae.BetaVAE` once on scikit-learn's
bundled digits, prints its held-out ELBO, rate and distortion, and compares
its codes with PCA's as features for a classifier. ``--figure traversals.png``
also saves the latent traversals of a test digit (with matplotlib installed).
``--version`` prints the version.
"""

import argparse
import os
import sys
import time

from . import __version__

_EXAMPLES = """\
examples:
  python -m sklearn_betavae demo                      # about 7 s on 2 CPU cores
  python -m sklearn_betavae demo --beta 4 --max-epochs 50 --verbose 0
  python -m sklearn_betavae demo --figure traversals.png
"""


def _int_in(low, high=None):
    """Type of an int option in ``[low, high]``: out of range is a usage error (status 2)."""
    def parse(text):
        value = int(text)  # a ValueError becomes argparse's "invalid ... value"
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is not {bound}")
        return value
    parse.__name__ = "int"
    return parse


def _figure_path(path):
    """Type of ``--figure``: a path matplotlib can write, checked before any training.

    Raises :class:`argparse.ArgumentTypeError`, which argparse reports as a usage
    error (exit status 2), when the format is unknown or the file cannot be created.
    """
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"cannot save a figure as {path!r}: it is a directory")
    extension = os.path.splitext(path)[1][1:].lower()
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        formats = None  # without matplotlib the demo skips the figure and says so
    else:
        formats = FigureCanvasBase.get_supported_filetypes()
    if formats is not None and extension not in formats:
        raise argparse.ArgumentTypeError(
            f"cannot save a figure as {path!r}: "
            + (f"unsupported format {extension!r}" if extension else "no file extension")
            + f"; use one of {', '.join(sorted(formats))}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        problem = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise argparse.ArgumentTypeError(
            f"cannot save a figure as {path!r}: directory {directory!r} {problem}"
        )
    target = path if os.path.exists(path) else directory
    if not os.access(target, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"cannot save a figure as {path!r}: {target!r} is not writable"
        )
    return path


def _build_parser():
    """The argument parser; the top-level help ends with the demo's options."""
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_betavae",
        description="Disentangling VAEs as scikit-learn transformers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"sklearn-betavae {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="fit a BetaVAE on the bundled digits and print results",
        description=(
            "Fit a BetaVAE once on scikit-learn's digits and print its held-out ELBO, "
            "rate and distortion, and the test accuracy of a logistic regression on its "
            "codes against PCA's."
        ),
    )
    option = demo.add_argument
    # At most the digits' 64 pixels: the demo compares the codes with as many PCA components.
    option("--n-components", type=_int_in(1, 64), default=8, metavar="N",
           help="latent dimension, 1 to 64 (default 8)")
    option("--beta", type=float, default=1.0, help="KL weight (default 1.0)")
    option("--max-epochs", type=_int_in(1), default=100, metavar="N",
           help="training epochs (default 100)")
    option("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    option("--random-state", type=int, default=0, metavar="SEED", help="seed (default 0)")
    option("--verbose", type=int, default=1, metavar="LEVEL",
           help="training progress: 0 silent (default 1)")
    option(
        "--figure",
        metavar="PATH",
        type=_figure_path,
        help="save a figure of latent traversals there, e.g. traversals.png (needs matplotlib)",
    )
    # One source for the demo's options: its own help, repeated under the top-level one.
    demo_help = "\n".join(f"  {line}".rstrip() for line in demo.format_help().splitlines())
    parser.epilog = f"{_EXAMPLES}\ncommand demo:\n{demo_help}\n"
    return parser


def _demo(args):
    start = time.perf_counter()
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from . import BetaVAE

    figure = args.figure
    if figure is not None and not _has_matplotlib():
        print(
            f"skipping the figure {figure}: matplotlib is not installed "
            "(pip install sklearn-betavae[plotting])"
        )
        figure = None

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    print(f"digits: {X_train.shape[0]} training and {X_test.shape[0]} test images of 8x8 pixels")
    print(
        f"fitting BetaVAE(n_components={args.n_components}, beta={args.beta}) "
        f"for {args.max_epochs} epochs on {args.device}...",
        flush=True,
    )
    fit_start = time.perf_counter()
    vae = BetaVAE(
        n_components=args.n_components,
        beta=args.beta,
        max_epochs=args.max_epochs,
        device=args.device,
        random_state=args.random_state,
        verbose=args.verbose,
    ).fit(X_train)
    fit_time = time.perf_counter() - fit_start
    rate, distortion = vae.rate_distortion(X_test)
    print(f"trained in {fit_time:.1f} s ({vae.n_iter_} epochs, likelihood={vae.likelihood_!r})")
    print(f"held-out ELBO       {vae.score(X_test):9.2f} nats per image (higher is better)")
    print(f"held-out rate       {rate.mean():9.2f} nats  (KL, information kept in z)")
    print(f"held-out distortion {distortion.mean():9.2f} nats  (-E[log p(x|z)])")
    kl = np.asarray(vae.history_[-1, "train_kl_per_dim"])
    print("KL per latent dimension: " + " ".join(f"{v:.2f}" for v in kl))

    # The classifier reads the codes of the model fitted above: no second fit of the VAE.
    def accuracy(reducer):
        clf = LogisticRegression(max_iter=2000).fit(reducer.transform(X_train), y_train)
        return clf.score(reducer.transform(X_test), y_test)

    vae_acc = accuracy(vae)
    pca_acc = accuracy(PCA(n_components=args.n_components).fit(X_train))
    print(f"logistic regression on {args.n_components} features: "
          f"BetaVAE {vae_acc:.3f}, PCA {pca_acc:.3f} test accuracy")
    status = 0
    if figure is not None:
        status = _save_traversals(vae, X_test[0], figure)
    print(f"done in {time.perf_counter() - start:.1f} s (training {fit_time:.1f} s)")
    return status


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save_traversals(vae, x, path):
    """Save the latent traversals of ``x`` to ``path``.

    Returns the exit status: 0 when saved, 1 when the file cannot be written.
    """
    from matplotlib.figure import Figure

    from .plotting import plot_latent_traversals

    # A bare Figure: no pyplot, no GUI backend, safe on a headless machine.
    n_steps = 7
    fig = Figure(figsize=(1.1 * n_steps + 0.6, 1.1 * vae.n_components + 0.4), layout="constrained")
    plot_latent_traversals(vae, x, n_steps=n_steps, image_shape=(8, 8), fig=fig)
    try:
        fig.savefig(path)
    except OSError as exc:
        print(f"error: cannot save the figure: {exc}", file=sys.stderr)
        return 1
    print(f"latent traversals of the first test image saved to {path}")
    return 0


def main(argv=None):
    """Entry point of ``python -m sklearn_betavae`` and the ``sklearn-betavae`` script.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments; ``None`` reads ``sys.argv``.

    Returns
    -------
    status : int
        Exit code: 0 on success (``--help`` and ``--version`` included), 2 on
        a usage error such as an unknown option or a ``--figure`` path that
        cannot be written (reported before training), 1 on a failure.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits after --help, --version and usage errors
        return exc.code
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _demo(args)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
