"""Which likelihood for data in [0, 1]: Bernoulli or continuous Bernoulli?

Fits ``BetaVAE`` with ``likelihood="bernoulli"`` and ``"continuous_bernoulli"``
on scikit-learn's digits, as grey levels (``X / 16``, 17 levels in [0, 1]) and
binarised (``X / 16 > 0.5``), several seeds each, and reports on a held-out
quarter:

- the ELBO in nats per image, the score ``GridSearchCV`` ranks by. For binary
  data both are lower bounds on a log-probability; for grey levels only the
  continuous Bernoulli's is (the Bernoulli "log-likelihood" of a grey level is
  not a normalised density), so the two columns are not comparable there;
- the mean squared error of the reconstruction ``inverse_transform(transform(X))``;
- the accuracy of a logistic regression on the codes (digit labels);
- the number of active latent dimensions (mean KL above 0.01 nats).

The result decides what ``likelihood="auto"`` picks (see the user guide).

Usage::

    python benchmarks/bench_likelihood.py [--seeds 3] [--max-epochs 100] [--markdown FILE]
"""

import argparse
import datetime
import platform
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import sklearn_betavae
from sklearn_betavae import BetaVAE

LIKELIHOODS = ("bernoulli", "continuous_bernoulli")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def _evaluate(vae, X_train, X_test, y_train, y_test):
    Z_train, Z_test = vae.transform(X_train), vae.transform(X_test)
    accuracy = LogisticRegression(max_iter=2000).fit(Z_train, y_train).score(Z_test, y_test)
    reconstruction = vae.inverse_transform(Z_test)
    return {
        "elbo": vae.score(X_test),
        "mse": float(np.mean((reconstruction - X_test) ** 2)),
        "accuracy": accuracy,
        "active": int((vae.kl_per_dim(X_test).mean(0) > 0.01).sum()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--markdown", help="write the table to this Markdown file")
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    datasets = {"grey levels (X / 16)": X / 16.0, "binarised (X / 16 > 0.5)": (X / 16.0 > 0.5) * 1.0}
    rows = []
    for data_name, data in datasets.items():
        X_train, X_test, y_train, y_test = train_test_split(data, y, test_size=0.25, random_state=0)
        for likelihood in LIKELIHOODS:
            results = []
            for seed in range(args.seeds):
                start = time.perf_counter()
                vae = BetaVAE(
                    n_components=args.n_components,
                    likelihood=likelihood,
                    max_epochs=args.max_epochs,
                    random_state=seed,
                ).fit(X_train)
                results.append(_evaluate(vae, X_train, X_test, y_train, y_test))
                print(f"{data_name:26s} {likelihood:20s} seed {seed}: {results[-1]} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
            stats = {
                key: (np.mean([r[key] for r in results]), np.std([r[key] for r in results]))
                for key in results[0]
            }
            rows.append((data_name, likelihood, stats))

    header = (
        "| data | likelihood | held-out ELBO (nats) | reconstruction MSE | "
        "accuracy on codes | active dims |\n|---|---|---|---|---|---|"
    )
    lines = [header]
    for data_name, likelihood, s in rows:
        lines.append(
            f"| {data_name} | `{likelihood}` | {s['elbo'][0]:.1f} ± {s['elbo'][1]:.1f} | "
            f"{s['mse'][0]:.4f} ± {s['mse'][1]:.4f} | {s['accuracy'][0]:.3f} ± "
            f"{s['accuracy'][1]:.3f} | {s['active'][0]:.1f} |"
        )
    table = "\n".join(lines)
    machine = (
        f"{_cpu_name()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, sklearn-betavae {sklearn_betavae.__version__}, "
        f"{datetime.date.today().isoformat()}"
    )
    command = "python benchmarks/bench_likelihood.py " + " ".join(argv or [])
    text = (
        f"Machine: {machine}. Command: `{command.strip()}`. BetaVAE(n_components="
        f"{args.n_components}, max_epochs={args.max_epochs}), mean ± std over "
        f"{args.seeds} seeds, held-out quarter of the digits.\n\n{table}\n"
    )
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
