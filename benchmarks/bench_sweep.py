"""Wall time of a 16-fit sweep on a local Dask cluster of 1 and 2 workers.

The sweep is a grid over beta of a ``BetaVAE`` (MLP) on scikit-learn's digits:
8 values x 2 folds = 16 fits, each scored by its held-out ELBO, every fit on one
torch thread. It runs

- in this process, one fit after the other (the reference);
- with ``GridSearchCV(n_jobs=2)`` on joblib's own processes (loky);
- on a ``LocalCluster`` of 1 and of 2 single-threaded worker processes, as 16
  tasks submitted with ``client.map`` (joblib runs the work of a cluster with a
  single thread in the calling process, so 1 worker is measured this way), and
  with 2 workers also as ``GridSearchCV`` under ``joblib.parallel_backend("dask")``.

The overhead per task is ``(workers x wall - reference wall) / fits``: the
worker-seconds a fit costs beyond the fit itself (sending X and the model,
scheduling, collecting the result). Worker processes are started and warmed up
by a tiny fit before the clock starts; the clusters' start-up time is reported
apart.

Usage::

    python benchmarks/bench_sweep.py [--repeats 3] [--quick] [--markdown FILE]
"""

import argparse
import statistics
import time

import joblib
import numpy as np
import torch
from distributed import Client, LocalCluster
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid

import sklearn_betavae
from sklearn_betavae import BetaVAE

N_FOLDS = 2


def _setup(quick):
    """Data, the estimator, the grid and the folds of the sweep."""
    X = load_digits().data / 16
    if quick:
        X = X[:128]
    estimator = BetaVAE(n_components=4, max_epochs=1 if quick else 50, random_state=0)
    betas = [1.0, 4.0] if quick else [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0]
    return X, estimator, {"beta": betas}, KFold(N_FOLDS)


def _fit_and_score(estimator, params, X, train, test):
    """One fit of the sweep and its held-out ELBO (a dask task, on the worker's one thread)."""
    return clone(estimator).set_params(**params).fit(X[train]).score(X[test])


def _warm_up():
    """A tiny fit: imports torch and the package and runs their first-call set-up."""
    BetaVAE(n_components=2, hidden_layer_sizes=(4,), max_epochs=1).fit(np.random.rand(32, 8))


def _tasks(X, estimator, grid, cv):
    return [(params, train, test) for params in ParameterGrid(grid) for train, test in cv.split(X)]


def _sequential(X, estimator, grid, cv):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        GridSearchCV(estimator, grid, cv=cv, refit=False).fit(X)
    finally:
        torch.set_num_threads(threads)


def _warm_loky():
    """Start joblib's 2 worker processes (kept for the next calls) and warm them up."""
    joblib.Parallel(n_jobs=2)(joblib.delayed(_warm_up)() for _ in range(4))


def _loky(X, estimator, grid, cv):
    GridSearchCV(estimator, grid, cv=cv, refit=False, n_jobs=2).fit(X)


def _dask_map(client):
    def run(X, estimator, grid, cv):
        tasks = _tasks(X, estimator, grid, cv)
        # A fresh key per call (hash=False): with the default content hash, a repeat
        # re-scatters under the same key while the release of the previous call's
        # future is still in flight, and the scheduler drops the data ("lost dependencies").
        X_future = client.scatter(X, broadcast=True, hash=False)
        futures = [
            client.submit(_fit_and_score, estimator, params, X_future, train, test, pure=False)
            for params, train, test in tasks
        ]
        client.gather(futures)

    return run


def _dask_grid_search(X, estimator, grid, cv):
    with joblib.parallel_backend("dask"):
        GridSearchCV(estimator, grid, cv=cv, refit=False).fit(X)


def _time(run, setup, repeats):
    """Median wall time of ``run(*setup)`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(*setup)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _start_cluster(n_workers):
    """A loopback cluster of single-threaded worker processes, warmed up."""
    start = time.perf_counter()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    client.run(_warm_up)
    return cluster, client, time.perf_counter() - start


def run(repeats, quick):
    setup = _setup(quick)
    n_fits = len(_tasks(*setup))
    _warm_up()
    reference = _time(_sequential, setup, repeats)
    _warm_loky()
    rows = [("this process, one fit at a time", 1, reference),
            ("joblib processes (loky), n_jobs=2", 2, _time(_loky, setup, repeats))]
    startup = {}
    for n_workers in (1, 2):
        cluster, client, startup[n_workers] = _start_cluster(n_workers)
        try:
            wall = _time(_dask_map(client), setup, repeats)
            rows.append((f"dask, {n_workers} worker(s), client.map", n_workers, wall))
            if n_workers > 1:
                wall = _time(_dask_grid_search, setup, repeats)
                rows.append((f"dask, {n_workers} workers, GridSearchCV", n_workers, wall))
        finally:
            client.close()
            cluster.close()
    table = [
        (name, workers, wall, reference / wall, (workers * wall - reference) / n_fits)
        for name, workers, wall in rows
    ]
    return n_fits, table, startup


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny fits, for a smoke run")
    parser.add_argument("--markdown", help="also write the table to this markdown file")
    args = parser.parse_args()
    n_fits, table, startup = run(args.repeats, args.quick)
    lines = ["| engine | workers | wall (s) | speed-up | overhead per task (s) |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {workers} | {wall:.1f} | {speedup:.2f} | {overhead:+.2f} |"
              for name, workers, wall, speedup, overhead in table]
    text = (
        f"Machine: {joblib.cpu_count()} cores, torch {torch.__version__}, sklearn-betavae "
        f"{sklearn_betavae.__version__}, {time.strftime('%Y-%m-%d')}. Command: "
        f"`python benchmarks/bench_sweep.py --repeats {args.repeats}"
        f"{' --quick' if args.quick else ''}`. {n_fits} fits, median wall time of "
        f"{args.repeats} sweeps; cluster start-up (with a first tiny fit in every worker): "
        + ", ".join(f"{s:.1f} s with {n} worker(s)" for n, s in startup.items())
        + ".\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
