"""UDR against the supervised metrics on generated sprites.

A grid over beta for ``BetaVAE`` and for ``BetaTCVAE``, several seeds per
setting, trained at the budget of ``bench_disentanglement.py`` (same sprites,
steps, warm-up and components). Every model is scored on 5,000 fresh sprites
with MIG and the FactorVAE score, and the seeds of each setting with
``udr_score`` (Spearman and Lasso) on the same sprites. Reported:

- per setting: the means over seeds, and the MIG of the seed that UDR selects
  (``UDRSelector``'s choice) against the median and the best MIG of the seeds;
- the Spearman rank correlation of UDR with MIG and with the FactorVAE score,
  across settings (means per setting, what a grid search compares) and across
  all models.

Usage::

    python benchmarks/bench_udr.py [--seeds 0 1 2 3 4] [--n-jobs 2] [--cache DIR]
        [--markdown FILE] [--quick]
"""

import argparse
import hashlib
import json
import os
import time

import numpy as np
import torch
from joblib import Parallel, delayed
from scipy.stats import spearmanr

import sklearn_betavae
from bench_disentanglement import ANNEAL_STEPS, N_COMPONENTS, _shared_params
from sklearn_betavae import BetaTCVAE, BetaVAE
from sklearn_betavae.datasets import SpritesSampler, make_sprites
from sklearn_betavae.metrics import active_units, factor_vae_score, mutual_info_gap
from sklearn_betavae.metrics._udr import _udr_from_codes

GRID = [("BetaVAE", BetaVAE, beta) for beta in (1.0, 2.0, 4.0, 8.0, 16.0)] + [
    ("BetaTCVAE", BetaTCVAE, beta) for beta in (1.0, 2.0, 4.0, 6.0, 10.0)
]
SETTINGS = {f"{name} (beta={beta:g})": (cls, beta) for name, cls, beta in GRID}
# Unlike the disentanglement table (fp32), precision "auto": bf16 on a CPU with
# AVX-512 BF16 (1.4 to 1.7 times as fast on these models), the package's default.
FULL = dict(image_size=32, steps=3000, n_train=20000, batch_size=64, n_eval=5000,
            precision="auto",
            factor_vae=dict(n_train=2000, n_eval=1000, n_variance_estimate=5000))
QUICK = dict(image_size=16, steps=8, n_train=256, batch_size=64, n_eval=256, precision="auto",
             factor_vae=dict(n_train=40, n_eval=20, n_variance_estimate=256))


def _fit_and_encode(setting, seed, config, n_threads):
    """Fit one seed of one setting; its codes and mean KL on the eval sprites, its scores."""
    torch.set_num_threads(n_threads)
    size = config["image_size"]
    X, _ = make_sprites(config["n_train"], image_size=size, random_state=1000)
    X_eval, factors_eval = make_sprites(config["n_eval"], image_size=size, random_state=2000)
    _, shared = _shared_params(size, config["steps"], config["n_train"], config["batch_size"],
                               precision=config["precision"])
    cls, beta = SETTINGS[setting]
    model = cls(beta=beta, random_state=seed, **shared)
    start = time.perf_counter()
    model.fit(X)
    fit_time = time.perf_counter() - start
    codes = model.transform(X_eval)
    scores = {
        "MIG": mutual_info_gap(factors_eval, codes),
        "FactorVAE score": factor_vae_score(model, SpritesSampler(image_size=size),
                                            random_state=seed, **config["factor_vae"]),
        "active dims": active_units(codes),
        "fit (s)": fit_time,
    }
    print(setting, seed, {k: round(v, 3) for k, v in scores.items()}, flush=True)
    return setting, seed, codes, model.kl_per_dim(X_eval).mean(axis=0), scores


def _cache_path(cache, config, setting, seed):
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    key = f"{setting}-{seed}-{digest}"
    return os.path.join(cache, "".join(c if c.isalnum() or c in "-=." else "_" for c in key))


def run(config, seeds, n_jobs=1, cache=None, only=None):
    """Fit (or read from ``cache``) every (setting, seed); return them by setting."""
    settings = [s for s in SETTINGS if not only or s in only]
    config = dict(config, anneal_steps=ANNEAL_STEPS, n_components=N_COMPONENTS,
                  version=sklearn_betavae.__version__)
    done, todo = {}, []
    for setting in settings:
        for seed in seeds:
            path = cache and _cache_path(cache, config, setting, seed) + ".npz"
            if path and os.path.exists(path):
                with np.load(path) as stored:
                    done[setting, seed] = (stored["codes"], stored["kl"],
                                           json.loads(str(stored["scores"])))
            else:
                todo.append((setting, seed))
    if cache:
        os.makedirs(cache, exist_ok=True)
    n_threads = max(1, (os.cpu_count() or 1) // n_jobs)
    for setting, seed, codes, kl, scores in Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_fit_and_encode)(setting, seed, config, n_threads) for setting, seed in todo
    ):
        done[setting, seed] = codes, kl, scores
        if cache:
            np.savez(_cache_path(cache, config, setting, seed), codes=codes, kl=kl,
                     scores=json.dumps(scores))
    return {setting: [done[setting, seed] for seed in seeds] for setting in settings}


def analyse(results):
    """Per-setting rows and the rank correlations of UDR with the supervised scores."""
    rows, per_model = [], []
    for setting, runs in results.items():
        codes, kl, scores = zip(*runs)
        udr = {corr: _udr_from_codes(list(codes), list(kl), correlation=corr)[0]
               for corr in ("spearman", "lasso")}
        mig = np.array([s["MIG"] for s in scores])
        fvs = np.array([s["FactorVAE score"] for s in scores])
        rows.append(dict(
            setting=setting, udr_s=udr["spearman"].mean(), udr_l=udr["lasso"].mean(),
            mig=mig.mean(), fvs=fvs.mean(), active=np.mean([s["active dims"] for s in scores]),
            mig_selected=mig[np.argmax(udr["spearman"])], mig_median=np.median(mig),
            mig_best=mig.max(),
        ))
        per_model += list(zip(udr["spearman"], udr["lasso"], mig, fvs))
    per_model = np.array(per_model)
    settings = np.array([[r["udr_s"], r["udr_l"], r["mig"], r["fvs"]] for r in rows])
    correlations = {
        (level, udr, metric): spearmanr(table[:, i], table[:, j]).statistic
        for level, table in (("settings", settings), ("models", per_model))
        for i, udr in ((0, "UDR (Spearman)"), (1, "UDR (Lasso)"))
        for j, metric in ((2, "MIG"), (3, "FactorVAE score"))
    }
    return rows, correlations, len(per_model)


def _markdown(rows, correlations, n_models, header):
    lines = [header, "",
             "| setting | UDR (Spearman) | UDR (Lasso) | MIG | FactorVAE score | active dims "
             "| MIG of UDR's pick | median MIG | best MIG |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['udr_s']:.3f} | {r['udr_l']:.3f} | {r['mig']:.3f} | "
            f"{r['fvs']:.3f} | {r['active']:.1f} | {r['mig_selected']:.3f} | "
            f"{r['mig_median']:.3f} | {r['mig_best']:.3f} |"
        )
    lines += ["", f"Spearman rank correlation across the {len(rows)} settings (means over "
              f"seeds) and across all {n_models} models:", "",
              "| | MIG, settings | FactorVAE score, settings | MIG, models | "
              "FactorVAE score, models |", "|---|---|---|---|---|"]
    for udr in ("UDR (Spearman)", "UDR (Lasso)"):
        cells = [f"{correlations[level, udr, metric]:.2f}"
                 for level in ("settings", "models") for metric in ("MIG", "FactorVAE score")]
        lines.append(f"| {udr} | " + " | ".join(cells) + " |")
    picks = sum(r["mig_selected"] >= r["mig_median"] for r in rows)
    lines += ["", f"UDR's pick has at least the median MIG of its seeds in {picks} of "
              f"{len(rows)} settings."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--only", nargs="+", help="settings to run (default: all)")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="fits run in parallel (torch threads are split between them)")
    parser.add_argument("--cache", help="directory of finished fits (codes and scores)")
    parser.add_argument("--quick", action="store_true", help="tiny sprites and budget")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    results = run(config, args.seeds, args.n_jobs, args.cache, args.only)
    rows, correlations, n_models = analyse(results)
    epochs, _ = _shared_params(config["image_size"], config["steps"], config["n_train"],
                               config["batch_size"])
    header = (
        f"Machine: {os.cpu_count()} cores, torch {torch.__version__}, sklearn-betavae "
        f"{sklearn_betavae.__version__}, {time.strftime('%Y-%m-%d')}. Command: "
        f"`python benchmarks/bench_udr.py --seeds {' '.join(map(str, args.seeds))} "
        f"--n-jobs {args.n_jobs}{' --quick' if args.quick else ''}`. Budget: "
        f"{config['n_train']} training sprites at {config['image_size']}x"
        f"{config['image_size']}, {epochs} epochs of batch {config['batch_size']} per fit "
        f"with a KL warm-up over {ANNEAL_STEPS} steps, {N_COMPONENTS} components, precision "
        f"{config['precision']!r}; scores and "
        f"UDR on {config['n_eval']} fresh sprites; {len(args.seeds)} seeds per setting."
    )
    text = _markdown(rows, correlations, n_models, header)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
