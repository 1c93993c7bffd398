"""Disentanglement with a few labels: the supervised term on generated sprites.

The budget of the disentanglement table (``bench_disentanglement.py``): the
same training sprites, steps, batch size, KL warm-up and number of components.
For each fraction of labelled rows (0 is the unsupervised model), ``y`` holds
the five factors of the labelled rows and NaN for the others, and the model is
fitted with ``fit(X, y)`` and ``supervision_weight > 0`` (Locatello et al.
2020). The labelled rows are a random subset drawn from the seed. Scores on
5,000 fresh sprites: MIG, DCI disentanglement, the FactorVAE score, the
per-factor MIG (the normalised gap of each factor) and the number of factors
captured, those whose per-factor MIG is at least ``CAPTURED_GAP``.

Usage::

    python benchmarks/bench_supervision.py [--image-size 32] [--steps 3000]
        [--fractions 0 0.001 0.01 0.1] [--seeds 0 1 2] [--n-jobs 2]
        [--model betavae] [--supervision-weight 10] [--labelled-batch-size 32]
        [--labels-alone | --correlations] [--encoder pooled] [--cache FILE]
        [--markdown FILE] [--quick]

``--labels-alone`` trains, in place of each model, the built-in encoder of the
same architecture on the supervised term alone (no decoder, no KL): the
labelled rows drawn ``--labelled-batch-size`` at a time for ``--steps`` steps,
Adam at the models' default learning rate. It measures what the labels can
teach the encoder by themselves. Its table, like the one ``--correlations``
prints for the models, gives the MIG and factors captured on the fresh sprites,
for each factor the Spearman correlation of its code dimension with it on the
labelled rows and on the fresh sprites, and the shape accuracy on fresh sprites
(the code's sigmoid rounded to the nearest of the three rescaled shape values).

``--encoder pooled`` (an experiment: a structural prior for shape, not a network
the package offers) gives the models, and the ``--labels-alone`` runs, the
built-in encoder plus a translation-invariant branch whose output is added to
it: three 3x3 convolutions of 32 channels at full resolution and a maximum over
positions (:class:`PooledConvEncoder`).

``--quick`` runs a tiny configuration (a few steps on a few hundred sprites) to
check that the script works.
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
from joblib import Parallel, delayed
from scipy.stats import spearmanr
from torch import nn

import sklearn_betavae
from bench_disentanglement import (
    ANNEAL_STEPS,
    N_COMPONENTS,
    PRECISION,
    REGULARIZER_SCALE,
    _load_cache,
    architecture_key,
)
from sklearn_betavae import BetaTCVAE, BetaVAE, DIPVAE, FactorVAE
from sklearn_betavae._base import _supervision_targets
from sklearn_betavae._losses import supervised_loss
from sklearn_betavae._modules import build_encoder, build_module
from sklearn_betavae.datasets import FACTOR_NAMES, SpritesSampler, make_sprites
from sklearn_betavae.metrics import dci, factor_vae_score, mutual_info_gap

# A factor is "captured" when one code holds this much more of its (normalised)
# information than any other code: its term of the MIG average.
CAPTURED_GAP = 0.2

# The unsupervised settings of the disentanglement table.
MODELS = {
    "betavae": lambda **kw: BetaVAE(beta=4.0, **kw),
    "betatcvae": lambda **kw: BetaTCVAE(beta=6.0, **kw),
    "factorvae": lambda **kw: FactorVAE(gamma=30.0, **kw),
    "dipvae": lambda **kw: DIPVAE(dip_type="ii", **kw),
}


class PooledConvEncoder(nn.Module):
    """The built-in convolutional encoder plus a translation-invariant branch.

    The branch (three 3x3 convolutions of ``width`` channels at full resolution
    and a maximum over positions) sees what a sprite looks like wherever it is;
    its means and log-variances are added to the built-in encoder's. A custom
    ``encoder`` for the estimators: ``PooledConvEncoder(in_features,
    out_features)`` for square one-channel images of ``in_features`` pixels.
    """

    def __init__(self, in_features, out_features, width=32):
        super().__init__()
        side = math.isqrt(in_features)
        self.image_shape = (1, side, side)
        self.base = build_encoder(in_features, out_features // 2, None, self.image_shape)
        self.branch = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(width, out_features),
        )

    def forward(self, x):
        mu, logvar = self.base(x)
        extra_mu, extra_logvar = self.branch(x.view(x.shape[0], *self.image_shape)).chunk(2, 1)
        return mu + extra_mu, logvar + extra_logvar


def _encoder_factory(config):
    """The ``encoder`` parameter of the models: ``None`` (built-in) or the pooled one."""
    return PooledConvEncoder if config.get("encoder") == "pooled" else None


def mig_scores(factors, codes):
    """MIG, the number of factors captured and each factor's term of the MIG."""
    gaps = np.array([mutual_info_gap(factor, codes) for factor in factors.T])
    return {
        "MIG": mutual_info_gap(factors, codes),
        "captured": int((gaps >= CAPTURED_GAP).sum()),
        **{f"MIG {name}": float(gap) for name, gap in zip(FACTOR_NAMES, gaps)},
    }


def partially_labelled(factors, fraction, seed):
    """``(y, rows)``: ``factors`` with all but ``round(fraction * n)`` random rows set to
    NaN, and the labelled rows, in order."""
    y = np.full(factors.shape, np.nan)
    n_labelled = int(round(fraction * len(factors)))
    rows = np.sort(np.random.RandomState(seed).permutation(len(factors))[:n_labelled])
    y[rows] = factors[rows]
    return y, rows


def _task_data(config, fraction, seed, n_threads):
    """What every task starts from: torch's threads set, then the training sprites, their
    factors, the partial labels ``y`` and labelled ``rows``, and the fresh sprites with
    their factors."""
    torch.set_num_threads(n_threads)
    size = config["image_size"]
    X, factors = make_sprites(config["n_train"], image_size=size, random_state=1000)
    X_eval, factors_eval = make_sprites(config["n_eval"], image_size=size, random_state=2000)
    return (X, factors, *partially_labelled(factors, fraction, seed), X_eval, factors_eval)


def label_correlations(codes, factors, rows, codes_eval, factors_eval):
    """Spearman correlation of code ``k`` with factor ``k``, labelled rows and fresh ones.

    ``codes`` are the posterior means of the training rows ``rows`` (the labelled
    ones). Also the shape accuracy on fresh sprites: the sigmoid of the shape
    code rounded to the nearest of the three rescaled shape values (the
    supervised term's target), against the true shape.
    """
    scores = {}
    for k, name in enumerate(FACTOR_NAMES):
        scores[f"rho {name} labelled"] = float(spearmanr(codes[:, k], factors[rows, k])[0])
        scores[f"rho {name} fresh"] = float(spearmanr(codes_eval[:, k], factors_eval[:, k])[0])
    shapes = np.unique(factors[rows, 0])
    levels = (shapes - shapes.min()) / (shapes.max() - shapes.min())
    predicted = 1 / (1 + np.exp(-codes_eval[:, 0].astype(np.float64)))
    nearest = shapes[np.abs(predicted[:, None] - levels).argmin(1)]
    scores["shape accuracy"] = float((nearest == factors_eval[:, 0]).mean())
    return scores


def _labels_alone(config, fraction, seed, n_threads):
    """Train the built-in encoder on the supervised term alone and score its codes (a task)."""
    X, factors, y, rows, X_eval, factors_eval = _task_data(config, fraction, seed, n_threads)
    size = config["image_size"]
    targets = _supervision_targets(y, len(X), N_COMPONENTS)
    generator = torch.Generator().manual_seed(seed)
    factory = _encoder_factory(config)
    encoder = build_module(
        (lambda: factory(X.shape[1], 2 * N_COMPONENTS)) if factory is not None else
        (lambda: build_encoder(X.shape[1], N_COMPONENTS, None, (1, size, size))), generator
    )
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    X_labelled = torch.as_tensor(X[rows], dtype=torch.float32)
    y_labelled = torch.as_tensor(targets[rows])
    start = time.perf_counter()
    for _ in range(config["steps"]):
        batch = torch.randint(len(rows), (config["labelled_batch_size"],), generator=generator)
        loss = supervised_loss(encoder(X_labelled[batch])[0], y_labelled[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    fit_time = time.perf_counter() - start

    def means(images):
        with torch.no_grad():
            return torch.cat([encoder(torch.as_tensor(chunk, dtype=torch.float32))[0]
                              for chunk in np.array_split(images, max(1, len(images) // 500))])

    codes_eval = means(X_eval).numpy()
    scores = {
        **mig_scores(factors_eval, codes_eval),
        **label_correlations(means(X[rows]).numpy(), factors, rows, codes_eval, factors_eval),
        "fit (s)": fit_time,
    }
    print(fraction, seed, {k: round(v, 3) for k, v in scores.items()}, flush=True)
    return fraction, seed, scores


def _fit_and_score(config, fraction, seed, n_threads):
    """Fit one model on one fraction of labels with one seed, and score it (one joblib task)."""
    X, factors, y, rows, X_eval, factors_eval = _task_data(config, fraction, seed, n_threads)
    size = config["image_size"]
    epochs = max(1, round(config["steps"] * config["batch_size"] / len(X)))
    model = MODELS[config["model"]](
        n_components=N_COMPONENTS, image_shape=(size, size), batch_size=config["batch_size"],
        max_epochs=epochs, anneal_steps=min(ANNEAL_STEPS, config["steps"] // 3),
        supervision_weight=config["supervision_weight"] if fraction > 0 else 0.0,
        labelled_batch_size=config["labelled_batch_size"], precision=PRECISION,
        regularizer_scale=REGULARIZER_SCALE, random_state=seed,
        encoder=_encoder_factory(config),
    )
    start = time.perf_counter()
    model.fit(X, y)
    fit_time = time.perf_counter() - start
    codes = model.transform(X_eval)
    correlations = (
        label_correlations(model.transform(X[rows]), factors, rows, codes, factors_eval)
        if fraction > 0 else {}
    )
    scores = {
        **mig_scores(factors_eval, codes),
        "DCI disentanglement": dci(factors_eval, codes, random_state=seed)["disentanglement"],
        "FactorVAE score": factor_vae_score(
            model, SpritesSampler(image_size=size), n_train=config["n_votes"],
            n_eval=config["n_votes"] // 2, n_variance_estimate=len(X_eval), random_state=seed,
        ),
        **correlations,
        "fit (s)": fit_time,
    }
    print(fraction, seed, {k: round(v, 3) for k, v in scores.items()}, flush=True)
    return fraction, seed, scores


def run(config, fractions, seeds, n_jobs=1, cache=None):
    """Fit and score every (fraction, seed) pair; ``cache`` as in bench_disentanglement."""
    done = _load_cache(cache, config)
    pairs = [(fraction, seed) for fraction in fractions for seed in seeds]
    todo = [pair for pair in pairs if pair not in done]
    n_threads = max(1, (os.cpu_count() or 1) // n_jobs)
    task = _labels_alone if config.get("labels_alone") else _fit_and_score
    for fraction, seed, scores in Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(task)(config, fraction, seed, n_threads) for fraction, seed in todo
    ):
        done[fraction, seed] = scores
        if cache:
            with open(cache, "a") as f:
                entry = dict(config=config, name=fraction, seed=seed, scores=scores)
                f.write(json.dumps(entry) + "\n")
    return {fraction: [done[fraction, seed] for seed in seeds] for fraction in fractions}


SCORE_METRICS = ["MIG", "DCI disentanglement", "FactorVAE score", "captured",
                 *[f"MIG {name}" for name in FACTOR_NAMES], "fit (s)"]
CORRELATION_METRICS = ["MIG", "captured", *[f"rho {name} {rows}" for name in FACTOR_NAMES
                                             for rows in ("labelled", "fresh")],
                       "shape accuracy", "fit (s)"]


def table(results, metrics=SCORE_METRICS):
    """Markdown rows: mean ± std over seeds per fraction of labelled rows."""
    lines = ["| labelled | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for fraction, runs in results.items():
        cells = []
        for metric in metrics:
            values = np.array([r.get(metric, np.nan) for r in runs], dtype=float)
            if np.isnan(values).all():
                cells.append("n/a")
            elif metric == "fit (s)":
                cells.append(f"{values.mean():.0f}")
            elif metric == "captured" or metric.startswith(("MIG ", "rho ")):
                cells.append(f"{values.mean():.{1 if metric == 'captured' else 2}f}")
            else:
                cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
        lines.append(f"| {100 * fraction:g}% | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3000, help="optimisation steps per fit")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.001, 0.01, 0.1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", choices=sorted(MODELS), default="betavae")
    parser.add_argument("--supervision-weight", type=float, default=10.0)
    parser.add_argument("--labelled-batch-size", type=int, default=32)
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="fits run in parallel (torch threads are split between them)")
    parser.add_argument("--cache", help="JSON-lines file of finished fits, reused on re-runs")
    parser.add_argument("--labels-alone", action="store_true",
                        help="train the encoder on the supervised term alone (see above)")
    parser.add_argument("--correlations", action="store_true",
                        help="print the code-factor correlations instead of the scores")
    parser.add_argument("--encoder", choices=["builtin", "pooled"], default="builtin",
                        help="pooled: add a translation-invariant branch (an experiment)")
    parser.add_argument("--markdown")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script")
    args = parser.parse_args()
    config = dict(
        image_size=args.image_size, steps=args.steps, n_train=args.n_train,
        batch_size=args.batch_size, model=args.model, supervision_weight=args.supervision_weight,
        labelled_batch_size=args.labelled_batch_size, n_eval=5000, n_votes=2000,
        anneal_steps=ANNEAL_STEPS, version=sklearn_betavae.__version__,
    )
    if args.encoder != "builtin":  # the built-in encoder's runs keep their cache keys
        config["encoder"] = args.encoder
    if args.labels_alone:
        config.update(labels_alone=True, model="encoder")
        args.fractions = [f for f in args.fractions if f > 0]
    if args.quick:
        config.update(image_size=32, steps=20, n_train=400, batch_size=32, n_eval=300, n_votes=100)
        args.seeds = args.seeds[:1]
        # A fraction leaving fewer than 10 of the 400 rows labelled (0.1%: none) has
        # nothing to rescale the factors by; fit rightly rejects it.
        args.fractions = [f for f in args.fractions if f == 0 or f * config["n_train"] >= 10]
    config.update(architecture_key(config["image_size"]))
    results = run(config, args.fractions, args.seeds, args.n_jobs, args.cache)
    epochs = max(1, round(config["steps"] * config["batch_size"] / config["n_train"]))
    size = config["image_size"]
    if args.labels_alone:
        budget = (
            f"the encoder alone, {config['steps']} steps of {config['labelled_batch_size']} "
            f"labelled rows drawn with replacement from {config['n_train']} training sprites at "
            f"{size}x{size}, {N_COMPONENTS} components"
        )
    else:
        budget = (
            f"{config['n_train']} training sprites at {size}x{size}, {epochs} epochs of batch "
            f"{config['batch_size']} (~{epochs * config['n_train'] // config['batch_size']} "
            f"steps), {N_COMPONENTS} components"
        )
    correlations = args.labels_alone or args.correlations
    text = (
        f"Machine: {os.cpu_count()} cores, torch {torch.__version__}, sklearn-betavae "
        f"{sklearn_betavae.__version__}, {time.strftime('%Y-%m-%d')}. Command: "
        f"`python benchmarks/bench_supervision.py --image-size {size} --steps {config['steps']}"
        + (" --labels-alone" if args.labels_alone else
           f" --model {args.model} --supervision-weight {args.supervision_weight}")
        + (f" --labelled-batch-size {args.labelled_batch_size}" if args.labelled_batch_size else "")
        + f" --fractions {' '.join(map(str, args.fractions))} --seeds "
        f"{' '.join(map(str, args.seeds))} --n-jobs {args.n_jobs}"
        + (" --correlations" if args.correlations else "")
        + (f" --encoder {args.encoder}" if args.encoder != "builtin" else "")
        + (" --quick" if args.quick else "")
        + f"`. Budget: {budget}; scores on {config['n_eval']} fresh sprites; mean ± std over "
        f"{len(args.seeds)} seeds"
        + ("; rho: Spearman correlation of code dimension k with factor k on the labelled "
           "rows and on the fresh sprites" if correlations else
           f"; a factor is captured when its MIG term is at least {CAPTURED_GAP}")
        + ".\n\n" + table(results, CORRELATION_METRICS if correlations else SCORE_METRICS) + "\n"
    )
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
