"""What a user gets from the defaults: 64x64 sprites, and the digits MLP.

``sprites`` mode: ``Estimator(image_shape=(64, 64), max_epochs=E)`` with every
other parameter at its default (or overridden with ``--set name=value``, for
trying candidate defaults), fitted on 20,000 independent 64x64 sprites; the
fit's wall time, and on 5,000 fresh sprites MIG (and each factor's term of it),
the FactorVAE score and the number of active dimensions. Seeds are run one after
the other, each fit using all cores: the wall time is what a user waits.

``digits`` mode: the MLP on scikit-learn's digits, as in the README:
``BetaVAE(n_components=8)`` on ``X / 16`` (held-out ELBO, and the accuracy of a
logistic regression on the codes of the held-out quarter), and the quickstart
pipeline ``StandardScaler -> BetaVAE(n_components=8) -> LogisticRegression``
(3-fold cross-validated accuracy).

Usage::

    python benchmarks/bench_defaults.py sprites [--estimator BetaTCVAE] [--epochs 8]
        [--seeds 0 1 2] [--set anneal_steps=0.3 ...] [--cache FILE] [--markdown FILE]
    python benchmarks/bench_defaults.py digits [--seeds 0 1 2] [--set ...]

``--anneal-dip-penalty`` (an experiment, not the package's objective) makes
DIPVAE's moment-matching penalty warm up with its KL weight, ``w(t) * (KL +
penalty)`` instead of ``w(t) * KL + penalty``.
"""

import argparse
import ast
import json
import os
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_betavae
from bench_disentanglement import architecture_key
from sklearn_betavae import BetaTCVAE, BetaVAE, DIPVAE, FactorVAE
from sklearn_betavae.datasets import SpritesSampler, make_sprites
from sklearn_betavae.metrics import factor_vae_score, mutual_info_gap

ESTIMATORS = {cls.__name__: cls for cls in (BetaVAE, BetaTCVAE, FactorVAE, DIPVAE)}


def _machine():
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, sklearn-betavae "
            f"{sklearn_betavae.__version__}, {time.strftime('%Y-%m-%d')}")


def _parse_overrides(items):
    overrides = {}
    for item in items or []:
        name, _, text = item.partition("=")
        try:
            overrides[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[name] = text
    return overrides


def _defaults(estimator):
    """The estimator's default parameters, as JSON values: part of a cached run's key.

    A run is reused only under the defaults it was made with: when a default
    changes, ``--set`` nothing measures the new one.
    """
    return json.loads(json.dumps(ESTIMATORS[estimator]().get_params(), default=repr))


def _anneal_dip_penalty():
    """Patch DIPVAE's objective so that the DIP penalty warms up with the KL weight."""
    from sklearn_betavae import _dip_vae
    from sklearn_betavae._losses import dip_covariance, dip_regularizer

    def regularizer(self, *, mu, logvar, kl_per_dim, step, **_):
        weight = self.annealed(1.0, step)
        dip = dip_regularizer(dip_covariance(mu, logvar, self.dip_type),
                              self.lambda_od, self.lambda_d)
        return (weight * (self.kl_term(kl_per_dim) + dip),
                {"beta": weight, "dip_penalty": dip.detach()})

    _dip_vae._DIPVAEObjective.regularizer = regularizer


def sprites(estimator, epochs, seed, overrides, n_train=20000, image_size=64):
    X, _ = make_sprites(n_train, image_size=image_size, random_state=1000)
    X_eval, factors = make_sprites(5000, image_size=image_size, random_state=2000)
    vae = ESTIMATORS[estimator](image_shape=(image_size, image_size), max_epochs=epochs,
                                random_state=seed, **overrides)
    start = time.perf_counter()
    vae.fit(X)
    fit_time = time.perf_counter() - start
    codes = vae.transform(X_eval)
    return {
        "fit (s)": fit_time,
        "MIG": mutual_info_gap(factors, codes),
        # MIG of each factor alone, in make_sprites' order (shape, scale, orientation,
        # posX, posY): which factors are captured. Printed, not averaged in the table.
        "MIG per factor": [mutual_info_gap(factors[:, [k]], codes)
                           for k in range(factors.shape[1])],
        "FactorVAE score": factor_vae_score(vae, SpritesSampler(image_size=image_size),
                                            n_train=2000, n_eval=1000,
                                            n_variance_estimate=5000, random_state=seed),
        "active dims": int((vae.kl_per_dim(X_eval).mean(0) > 0.01).sum()),
        "precision": vae.precision_,
    }


def digits(seed, overrides):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25,
                                                        random_state=0)
    start = time.perf_counter()
    vae = BetaVAE(n_components=8, random_state=seed, **overrides).fit(X_train)
    fit_time = time.perf_counter() - start
    classifier = LogisticRegression(max_iter=2000).fit(vae.transform(X_train), y_train)
    pipe = make_pipeline(StandardScaler(), BetaVAE(n_components=8, random_state=seed, **overrides),
                         LogisticRegression(max_iter=1000))
    return {
        "fit (s)": fit_time,
        "held-out ELBO": vae.score(X_test),
        "accuracy on codes": classifier.score(vae.transform(X_test), y_test),
        "pipeline CV accuracy": cross_val_score(pipe, X, y, cv=3).mean(),
        "active dims": int((vae.kl_per_dim(X_test).mean(0) > 0.01).sum()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["sprites", "digits"])
    parser.add_argument("--estimator", default="BetaTCVAE", choices=sorted(ESTIMATORS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE",
                        help="parameters to override (candidate defaults)")
    parser.add_argument("--cache", help="JSON-lines file of finished runs, reused on re-runs")
    parser.add_argument("--markdown")
    parser.add_argument("--anneal-dip-penalty", action="store_true",
                        help="experiment: DIPVAE's penalty warms up with its KL weight")
    args = parser.parse_args(argv)
    if args.anneal_dip_penalty:
        _anneal_dip_penalty()
    overrides = _parse_overrides(args.set)
    estimator = args.estimator if args.mode == "sprites" else "BetaVAE"
    config = dict(mode=args.mode, overrides=overrides, defaults=_defaults(estimator),
                  version=sklearn_betavae.__version__,
                  **({"estimator": args.estimator, "epochs": args.epochs}
                     if args.mode == "sprites" else {}))
    if args.mode == "sprites":  # the built-in architecture is part of the defaults too
        config.update(architecture_key(64))
    if args.anneal_dip_penalty:
        config["anneal_dip_penalty"] = True
    done = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            for line in f:
                entry = json.loads(line)
                if entry["config"] == config:
                    done[entry["seed"]] = entry["scores"]
    runs = []
    for seed in args.seeds:
        if seed not in done:
            if args.mode == "sprites":
                done[seed] = sprites(args.estimator, args.epochs, seed, overrides)
            else:
                done[seed] = digits(seed, overrides)
            print(seed, done[seed], flush=True)
            if args.cache:
                with open(args.cache, "a") as f:
                    f.write(json.dumps(dict(config=config, seed=seed, scores=done[seed])) + "\n")
        runs.append(done[seed])
    metrics = [k for k in runs[0] if k not in ("precision", "MIG per factor")]
    cells = []
    for metric in metrics:
        values = np.array([r[metric] for r in runs], dtype=float)
        cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
    name = (f"{args.estimator}(image_shape=(64, 64), max_epochs={args.epochs}"
            if args.mode == "sprites" else "BetaVAE(n_components=8")
    name += "".join(f", {k}={v!r}" for k, v in overrides.items()) + ")"
    text = (
        f"Machine: {_machine()}. Command: `python benchmarks/bench_defaults.py "
        f"{' '.join(argv if argv is not None else [])}`. Mean ± std over seeds "
        f"{' '.join(map(str, args.seeds))}.\n\n"
        f"| model | {' | '.join(metrics)} |\n|---|{'---|' * len(metrics)}\n"
        f"| `{name}` | {' | '.join(cells)} |\n"
    )
    if all("MIG per factor" in r for r in runs):
        per_seed = "; ".join(
            f"seed {seed}: " + ", ".join(f"{v:.2f}" for v in r["MIG per factor"])
            for seed, r in zip(args.seeds, runs)
        )
        text += f"\nMIG per factor (shape, scale, orientation, posX, posY), {per_seed}.\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
