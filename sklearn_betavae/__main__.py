"""Command line: ``python -m sklearn_betavae demo``.

The demo fits a :class:`~sklearn_betavae.BetaVAE` on scikit-learn's bundled
digits, prints its held-out ELBO, rate and distortion, and compares its codes
with PCA's as features for a classifier. ``--figure traversals.png`` also
saves the latent traversals of a test digit (with matplotlib installed).
"""

import argparse
import sys
import time


def _demo(args):
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    from . import BetaVAE

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    print(f"digits: {X_train.shape[0]} training and {X_test.shape[0]} test images of 8x8 pixels")
    print(
        f"fitting BetaVAE(n_components={args.n_components}, beta={args.beta}) "
        f"for {args.max_epochs} epochs on {args.device}..."
    )
    start = time.perf_counter()
    vae = BetaVAE(
        n_components=args.n_components,
        beta=args.beta,
        max_epochs=args.max_epochs,
        device=args.device,
        random_state=args.random_state,
        verbose=args.verbose,
    ).fit(X_train)
    elapsed = time.perf_counter() - start
    rate, distortion = vae.rate_distortion(X_test)
    print(f"trained in {elapsed:.1f} s ({vae.n_iter_} epochs, likelihood={vae.likelihood_!r})")
    print(f"held-out ELBO       {vae.score(X_test):9.2f} nats per image (higher is better)")
    print(f"held-out rate       {rate.mean():9.2f} nats  (KL, information kept in z)")
    print(f"held-out distortion {distortion.mean():9.2f} nats  (-E[log p(x|z)])")
    kl = np.asarray(vae.history_[-1, "train_kl_per_dim"])
    print("KL per latent dimension: " + " ".join(f"{v:.2f}" for v in kl))

    def accuracy(reducer):
        clf = make_pipeline(reducer, LogisticRegression(max_iter=2000))
        return clf.fit(X_train, y_train).score(X_test, y_test)

    vae_acc = accuracy(vae.set_params(verbose=0))
    pca_acc = accuracy(PCA(n_components=args.n_components))
    print(f"logistic regression on {args.n_components} features: "
          f"BetaVAE {vae_acc:.3f}, PCA {pca_acc:.3f} test accuracy")
    if args.figure is not None:
        return _save_traversals(vae, X_test[0], args.figure)
    return 0


def _save_traversals(vae, x, path):
    """Save the latent traversals of ``x`` to ``path``; skip them without matplotlib.

    Returns the exit status: 0 when saved or skipped, 1 when the file cannot be written.
    """
    try:
        from matplotlib.figure import Figure

        from .plotting import plot_latent_traversals
    except ImportError:
        print(
            f"skipping the figure {path}: matplotlib is not installed "
            "(pip install sklearn-betavae[plotting])"
        )
        return 0
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
        Exit code: 0 on success, 2 on a usage error, 1 on a failure.
    """
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_betavae",
        description="Disentangling VAEs as scikit-learn transformers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="fit a BetaVAE on the bundled digits and print results")
    demo.add_argument("--n-components", type=int, default=8, help="latent dimension (default 8)")
    demo.add_argument("--beta", type=float, default=1.0, help="KL weight (default 1.0)")
    demo.add_argument("--max-epochs", type=int, default=100, help="training epochs (default 100)")
    demo.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    demo.add_argument("--verbose", type=int, default=1, help="0 silences the epoch table")
    demo.add_argument(
        "--figure",
        metavar="PATH",
        help="save a figure of latent traversals there, e.g. traversals.png (needs matplotlib)",
    )
    args = parser.parse_args(argv)
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
