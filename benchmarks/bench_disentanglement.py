"""Disentanglement of the VAEs against linear baselines on generated sprites.

Every model is trained on ``make_sprites`` images at a fixed budget (the same
number of optimisation steps for every VAE, printed with the table), for
several seeds, then scored on fresh samples with MIG, the FactorVAE score,
DCI disentanglement and SAP. Linear baselines (PCA, FastICA, FactorAnalysis)
get the same number of components. Mean and standard deviation over seeds are
reported: Locatello et al. (2019) showed the seed matters as much as the model.

Usage::

    python benchmarks/bench_disentanglement.py [--image-size 32] [--steps 1500]
        [--seeds 0 1 2] [--markdown FILE]
"""

import argparse
import os
import time

import numpy as np
import torch
from sklearn.decomposition import PCA, FactorAnalysis, FastICA

import sklearn_betavae
from sklearn_betavae import BetaTCVAE, BetaVAE, DIPVAE, FactorVAE
from sklearn_betavae.datasets import SpritesSampler, make_sprites
from sklearn_betavae.metrics import dci, factor_vae_score, mutual_info_gap, sap_score

N_COMPONENTS = 10


def _models(image_size, steps, n_train, batch_size):
    epochs = max(1, round(steps * batch_size / n_train))
    shared = dict(n_components=N_COMPONENTS, image_shape=(image_size, image_size),
                  batch_size=batch_size, max_epochs=epochs, learning_rate=5e-4)
    return epochs, {
        "BetaVAE (beta=1)": lambda seed: BetaVAE(beta=1.0, random_state=seed, **shared),
        "BetaVAE (beta=4)": lambda seed: BetaVAE(beta=4.0, random_state=seed, **shared),
        "BetaTCVAE (beta=6)": lambda seed: BetaTCVAE(beta=6.0, random_state=seed, **shared),
        "FactorVAE": lambda seed: FactorVAE(random_state=seed, **shared),
        "DIPVAE (ii)": lambda seed: DIPVAE(dip_type="ii", random_state=seed, **shared),
        "PCA": lambda seed: PCA(N_COMPONENTS, random_state=seed),
        "FastICA": lambda seed: FastICA(N_COMPONENTS, random_state=seed, max_iter=500),
        "FactorAnalysis": lambda seed: FactorAnalysis(N_COMPONENTS, random_state=seed),
    }


def _scores(model, X_eval, factors_eval, sampler, seed):
    codes = model.transform(X_eval)
    return {
        "MIG": mutual_info_gap(factors_eval, codes),
        "FactorVAE score": factor_vae_score(model, sampler, n_train=2000, n_eval=1000,
                                            n_variance_estimate=5000, random_state=seed),
        "DCI disentanglement": dci(factors_eval, codes, random_state=seed)["disentanglement"],
        "SAP": sap_score(factors_eval, codes, random_state=seed),
    }


def run(image_size, steps, seeds, n_train, batch_size, only=None):
    X, _ = make_sprites(n_train, image_size=image_size, random_state=1000)
    X_eval, factors_eval = make_sprites(5000, image_size=image_size, random_state=2000)
    sampler = SpritesSampler(image_size=image_size)
    epochs, models = _models(image_size, steps, n_train, batch_size)
    results = {}
    for name, make in models.items():
        if only and name not in only:
            continue
        for seed in seeds:
            start = time.perf_counter()
            model = make(seed)
            is_vae = hasattr(model, "rate_distortion")
            model.fit(X if is_vae else X.astype(np.float32))
            scores = _scores(model, X_eval, factors_eval, sampler, seed)
            scores["fit (s)"] = time.perf_counter() - start
            results.setdefault(name, []).append(scores)
            print(name, seed, {k: round(v, 3) for k, v in scores.items()}, flush=True)
    return epochs, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1500, help="optimisation steps per VAE")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", help="model names to run (default: all)")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    epochs, results = run(args.image_size, args.steps, args.seeds, args.n_train,
                          args.batch_size, args.only)
    metrics = ["MIG", "FactorVAE score", "DCI disentanglement", "SAP", "fit (s)"]
    lines = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, runs in results.items():
        cells = []
        for metric in metrics:
            values = np.array([r[metric] for r in runs])
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}" if metric != "fit (s)"
                         else f"{values.mean():.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = (
        f"Machine: {os.cpu_count()} cores, torch {torch.__version__}, sklearn-betavae "
        f"{sklearn_betavae.__version__}, {time.strftime('%Y-%m-%d')}. Command: "
        f"`python benchmarks/bench_disentanglement.py --image-size {args.image_size} "
        f"--steps {args.steps} --n-train {args.n_train} --seeds "
        f"{' '.join(map(str, args.seeds))}`. Budget: {args.n_train} training sprites at "
        f"{args.image_size}x{args.image_size}, {epochs} epochs of batch {args.batch_size} "
        f"(~{epochs * args.n_train // args.batch_size} steps) per VAE, {N_COMPONENTS} "
        f"components; scores on 5,000 fresh sprites; mean ± std over {len(args.seeds)} seeds.\n\n"
        + "\n".join(lines) + "\n"
    )
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
