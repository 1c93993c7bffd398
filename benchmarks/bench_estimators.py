"""How exact are the Monte Carlo estimates: the ELBO's noise and the minibatch TC estimators.

Three measurements, each against the way it used to be done:

1. ``score(X)`` noise. ``score_samples`` averages 8 reparameterised draws per
   row. With one set of 8 draws shared by every row (the package's former
   estimate) the rows' errors do not average out; with noise keyed by each
   row (``_random.keyed_standard_normal``, the current one) they do. Reported:
   the standard deviation of ``score(X)`` over 20 noise seeds on the held-out
   digits, for a ``BetaVAE`` trained as in the demo.
2. The minibatch estimate of the aggregate posterior ``q(z_i)`` on data
   ordered like the dataset (datasets often are, like the dSprites grid in
   factor order, and training batches are index-sorted). A ``BetaTCVAE`` is
   trained on the digits sorted by label; then, for index-sorted random
   minibatches,
   the estimate ``sum_j w_ij q(z_i | x_j)`` is compared with the exact
   ``q(z_i) = mean_n q(z_i | x_n)`` over the whole subset. Reported: the mean
   ratio estimate / exact for minibatch stratified sampling with the fixed
   partner ``j = i + 1`` (former), with random partners (current), and for
   minibatch weighted sampling.
3. The index-code MI that early stopping of a ``BetaTCVAE`` watches on its
   validation batches (contiguous slices of the sorted validation rows):
   MSS with the fixed and with random partners, against the MI from the
   exact ``q(z_i)``.

Usage::

    python benchmarks/bench_estimators.py [--markdown FILE]
"""

import argparse
import datetime
import math
import time

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import sklearn_betavae
from sklearn_betavae import BetaTCVAE, BetaVAE
from sklearn_betavae._base import _N_SCORE_SAMPLES
from sklearn_betavae._losses import gaussian_log_density, reconstruction_log_likelihood


def _machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{model}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"sklearn-betavae {sklearn_betavae.__version__}, {datetime.date.today().isoformat()}"
    )


def _shared_noise_score(vae, X, seed):
    """The former estimate: the same 8 draws of eps for every row."""
    eps = torch.randn(_N_SCORE_SAMPLES, 1, vae.n_components,
                      generator=torch.Generator().manual_seed(seed))
    module = vae.module_.eval()
    with torch.no_grad():
        x = torch.as_tensor(X, dtype=torch.float32)
        mu, logvar = module(x)
        z = (mu + torch.exp(0.5 * logvar) * eps).reshape(-1, vae.n_components)
        decoded = module.decode(z).double()
        x_rep = x.double().expand(_N_SCORE_SAMPLES, *x.shape).reshape(-1, x.shape[1])
        log_px = reconstruction_log_likelihood(x_rep, decoded, vae.likelihood_)
        log_px = log_px.reshape(_N_SCORE_SAMPLES, -1).mean(0)
        rate = (0.5 * (mu.double() ** 2 + logvar.double().exp() - 1 - logvar.double())).sum(1)
    return float((log_px - rate).mean())


def score_noise(n_seeds=20):
    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split(X / 16.0, test_size=0.25, random_state=0)
    vae = BetaVAE(n_components=8, max_epochs=60, random_state=0).fit(X_train)
    shared = [_shared_noise_score(vae, X_test, seed) for seed in range(n_seeds)]
    keyed = []
    for seed in range(n_seeds):
        vae._score_seed = seed
        keyed.append(vae.score(X_test))
    return {"shared": (np.mean(shared), np.std(shared, ddof=1)),
            "per row": (np.mean(keyed), np.std(keyed, ddof=1))}


def _posteriors(vae, X):
    with torch.no_grad():
        mu, logvar = vae.module_.eval()(torch.as_tensor(X, dtype=torch.float32))
    return mu.double(), logvar.double()


def _log_q_given(z, mu, logvar):
    """log q(z_i | x_j) for all i, j: (len(z), len(mu))."""
    return gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0)).sum(2)


def _weights(b, n, kind, rng):
    if kind == "mws":
        return np.full((b, b), 1.0 / b)
    w = np.full((b, b), 1.0 / (b - 1))
    if kind == "mss, fixed partner i + 1":
        partner = (np.arange(b) + 1) % b
    else:
        cycle = rng.permutation(b)
        partner = np.empty(b, dtype=int)
        partner[cycle] = np.roll(cycle, -1)
    w[np.arange(b), partner] = (n - b + 1) / (n * (b - 1))
    w[np.arange(b), np.arange(b)] = 1.0 / n
    return w


KINDS = ("mss, fixed partner i + 1", "mss, random partners", "mws")


def tc_estimators(batch_size=64, n_batches=300, max_epochs=60, subsets=(None, 96)):
    """Estimate / exact ratios and validation MI, for the whole data and ordered subsets.

    A subset of ``n`` rows keeps the order of the data (every k-th row); with ``n``
    close to the minibatch size the stratified weight differs most from the others.
    """
    X, y = load_digits(return_X_y=True)
    X = X[np.argsort(y, kind="stable")] / 16.0  # ordered like the data: by label
    vae = BetaTCVAE(n_components=8, max_epochs=max_epochs, batch_size=batch_size,
                    random_state=0).fit(X)
    mu_all, logvar_all = _posteriors(vae, X)
    generator = torch.Generator().manual_seed(1)
    z_all = mu_all + torch.exp(0.5 * logvar_all) * torch.randn(
        mu_all.shape, generator=generator, dtype=mu_all.dtype)
    results = []
    for subset in subsets:
        rows = np.arange(len(X)) if subset is None else np.linspace(
            0, len(X) - 1, subset).astype(int)
        mu, logvar, z = mu_all[rows], logvar_all[rows], z_all[rows]
        n_samples = len(rows)
        exact = torch.cat([torch.logsumexp(_log_q_given(z[i:i + 256], mu, logvar), 1)
                           for i in range(0, n_samples, 256)]) - math.log(n_samples)
        rng = np.random.RandomState(0)
        ratios = {kind: [] for kind in KINDS}
        for _ in range(n_batches):
            batch = np.sort(rng.choice(n_samples, batch_size, replace=False))  # as BatchIterator
            log_pairs = _log_q_given(z[batch], mu[batch], logvar[batch]).numpy()
            for kind in KINDS:
                w = _weights(batch_size, n_samples, kind, rng)
                estimate = logsumexp(log_pairs + np.log(w), axis=1)
                ratios[kind].extend(np.exp(estimate - exact[batch].numpy()))
        # MI on contiguous validation slices (sorted rows), as early stopping sees it.
        valid = np.sort(rng.choice(n_samples, max(batch_size, n_samples // 10), replace=False))
        log_qzx = gaussian_log_density(z, mu, logvar).sum(1).numpy()
        mi = {kind: [] for kind in KINDS}
        for start in range(0, len(valid) - batch_size + 1, batch_size):
            batch = valid[start:start + batch_size]
            log_pairs = _log_q_given(z[batch], mu[batch], logvar[batch]).numpy()
            for kind in KINDS:
                w = _weights(batch_size, n_samples, kind, rng)
                mi[kind].append(np.mean(log_qzx[batch] - logsumexp(log_pairs + np.log(w), axis=1)))
        exact_mi = float(np.mean(log_qzx[valid] - exact[valid].numpy()))
        results.append((n_samples, {k: float(np.mean(r)) for k, r in ratios.items()},
                        {k: float(np.mean(v)) for k, v in mi.items()}, exact_mi))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", help="write the tables to this Markdown file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    noise = score_noise()
    tc = tc_estimators()
    lines = [
        f"Machine: {_machine()}. Command: `python benchmarks/bench_estimators.py`. "
        f"Run time {time.perf_counter() - start:.0f} s.",
        "",
        "ELBO noise: `score(X)` of a BetaVAE (8 components, 60 epochs) on the 450 held-out "
        "digits, over 20 noise seeds:",
        "",
        "| Monte Carlo noise | mean score (nats) | std over noise seeds (nats) |",
        "|---|---|---|",
    ]
    for name, (mean, std) in noise.items():
        lines.append(f"| {name} | {mean:.2f} | {std:.3f} |")
    lines += [
        "",
        "Aggregate posterior on ordered data: mean of estimate / exact `q(z_i)` over 300 "
        "index-sorted minibatches of 64 from N digits in label order (all 1,797, and an "
        "ordered subset of 96), posteriors of a BetaTCVAE (8 components, 60 epochs); and the "
        "index-code MI on contiguous validation slices (sorted random rows):",
        "",
        "| N | estimator | estimate / exact q(z_i) | validation MI (nats) |",
        "|---|---|---|---|",
    ]
    for n_samples, ratios, mi, exact_mi in tc:
        for kind in KINDS:
            lines.append(f"| {n_samples} | {kind} | {ratios[kind]:.3f} | {mi[kind]:.2f} |")
        lines.append(f"| {n_samples} | exact q(z) over the N rows | 1 | {exact_mi:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
