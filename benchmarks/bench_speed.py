"""Training and inference throughput of the estimators against plain PyTorch.

Each case runs ``BetaVAE.fit`` and a hand-written PyTorch loop over the very same
``nn.Module`` architecture, optimizer (Adam), learning rate, batch size, loss and
data, alternating the two, and reports the median samples/s of each and the
median ratio of the alternated pairs (package / plain; 1.0 means the convenience
costs nothing). Inference compares ``transform`` / ``inverse_transform`` with a
``torch.no_grad()`` forward of the same fitted module over the same batches and
codes, taking the best of several calls per repeat on each side. The last table
gives the step cost of ``BetaTCVAE``, ``FactorVAE`` and ``DIPVAE`` relative to
``BetaVAE``.

Usage::

    python benchmarks/bench_speed.py [--repeats 5] [--markdown docs/benchmarks_speed.md]
"""

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

import sklearn_betavae
from sklearn_betavae import BetaVAE
from sklearn_betavae._losses import gaussian_kl_per_dim, reconstruction_log_likelihood
from sklearn_betavae._modules import build_vae_module


INFERENCE_CALLS = 5


def _plain_fit(X, n_components, image_shape, batch_size, epochs, seed):
    """The loop a user would write: float32 tensor up front, randperm, Adam."""
    torch.manual_seed(seed)
    shape = None if image_shape is None else (1, *image_shape)
    module = build_vae_module(X.shape[1], n_components, None, shape)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    start = time.perf_counter()  # from the numpy array, like BetaVAE.fit
    data = torch.from_numpy(X).float()
    for _ in range(epochs):
        order = torch.randperm(len(data))
        for i in range(0, len(data), batch_size):
            x = data[order[i : i + batch_size]]
            mu, logvar = module(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            recon = -reconstruction_log_likelihood(x, module.decode(z), "bernoulli").mean()
            loss = recon + gaussian_kl_per_dim(mu, logvar).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # the package reads the loss every step too (history)
    return epochs * len(X) / (time.perf_counter() - start), module


def _package_fit(X, n_components, image_shape, batch_size, epochs, seed, cls=BetaVAE, **params):
    vae = cls(n_components=n_components, image_shape=image_shape, batch_size=batch_size,
              max_epochs=epochs, random_state=seed, **params)
    start = time.perf_counter()
    vae.fit(X)
    return epochs * len(X) / (time.perf_counter() - start), vae


def _codes(n_samples, n_components):
    """The float32 codes both sides decode."""
    return np.random.RandomState(0).randn(n_samples, n_components).astype(np.float32)


def _plain_inference(module, X, batch_size, n_components):
    start = time.perf_counter()  # from the numpy array, like transform
    data = torch.from_numpy(X).float()
    with torch.no_grad():
        codes = [module(data[i : i + batch_size])[0] for i in range(0, len(data), batch_size)]
        torch.cat(codes).numpy()
    encode = len(X) / (time.perf_counter() - start)
    Z = _codes(len(X), n_components)
    start = time.perf_counter()
    Z = torch.from_numpy(Z)
    with torch.no_grad():
        out = [torch.sigmoid(module.decode(Z[i : i + batch_size]))
               for i in range(0, len(Z), batch_size)]
        torch.cat(out).numpy()
    return encode, len(X) / (time.perf_counter() - start)


def _package_inference(vae, X):
    start = time.perf_counter()
    Z = vae.transform(X)
    encode = len(X) / (time.perf_counter() - start)
    Z = _codes(*Z.shape)
    start = time.perf_counter()
    vae.inverse_transform(Z)
    return encode, len(X) / (time.perf_counter() - start)


def _cases(quick):
    X_digits = (load_digits().data / 16.0).astype(np.float64)
    X_digits = np.tile(X_digits, (1 if quick else 4, 1))
    yield "MLP, load_digits (64 features)", X_digits, None, 64, 2 if quick else 5
    try:
        from sklearn_betavae.datasets import make_sprites

        X_sprites, _ = make_sprites(256 if quick else 2048, image_size=64, random_state=0)
    except ImportError:  # datasets not available: random binary images of the same size
        rng = np.random.RandomState(0)
        X_sprites = (rng.rand(256 if quick else 2048, 4096) > 0.9).astype(np.uint8)
    yield "conv, 64x64 sprites (uint8)", X_sprites, (64, 64), 64, 1


def _summary(package, plain):
    """Median speeds and the median of the paired ratios.

    Each package run is paired with the plain run next to it, so a slow drift in
    the machine's load cancels in the ratio of a pair; the median ratio of the
    pairs is steadier than the ratio of the medians on a shared machine.
    """
    ratios = [p / t for p, t in zip(package, plain)]
    return statistics.median(package), statistics.median(plain), statistics.median(ratios)


def run(repeats, quick=False):
    """Run every case; return the rows of the training and inference tables."""
    training, inference = [], []
    for name, X, image_shape, batch_size, epochs in _cases(quick):
        n_components = 10
        # warm-up (allocators, lazy init) before timing
        _package_fit(X[:256], n_components, image_shape, batch_size, 1, 0)
        _plain_fit(X[:256].astype(np.float32), n_components, image_shape, batch_size, 1, 0)
        package, plain, enc_p, dec_p, enc_t, dec_t = [], [], [], [], [], []
        for r in range(repeats):
            speed, vae = _package_fit(X, n_components, image_shape, batch_size, epochs, r)
            package.append(speed)
            speed, _ = _plain_fit(X, n_components, image_shape, batch_size, epochs, r)
            plain.append(speed)
            # Inference: the same fitted module and batches on both sides (weights
            # change the cost of a forward, e.g. through denormals), alternating.
            # Best of INFERENCE_CALLS per side, as timeit advises: a call of a few
            # ms is only ever slowed down by other processes, never sped up.
            calls = [(_package_inference(vae, X),
                      _plain_inference(vae.net_.module_, X, batch_size, n_components))
                     for _ in range(INFERENCE_CALLS)]
            enc_p.append(max(p[0] for p, _ in calls))
            dec_p.append(max(p[1] for p, _ in calls))
            enc_t.append(max(t[0] for _, t in calls))
            dec_t.append(max(t[1] for _, t in calls))
        training.append((name, *_summary(package, plain)))
        inference.append((name, "transform", *_summary(enc_p, enc_t)))
        inference.append((name, "inverse_transform", *_summary(dec_p, dec_t)))
    return training, inference


def run_relative_cost(repeats, quick=False):
    """Training step cost of each estimator relative to BetaVAE on the MLP case."""
    from sklearn_betavae import BetaTCVAE, DIPVAE, FactorVAE

    X = np.tile(load_digits().data / 16.0, (1 if quick else 2, 1))
    models = [("BetaVAE", BetaVAE, {}), ("BetaTCVAE", BetaTCVAE, {}),
              ("FactorVAE", FactorVAE, {}), ("DIPVAE", DIPVAE, {})]
    speeds = {}
    for name, cls, params in models:
        speeds[name] = statistics.median(
            _package_fit(X, 10, None, 64, 1 if quick else 3, r, cls=cls, **params)[0]
            for r in range(repeats)
        )
    base = speeds["BetaVAE"]
    return [(name, speed, base / speed) for name, speed in speeds.items()]


def _table(header, rows, fmt):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f.format(v) for f, v in zip(fmt, row)) + " |" for row in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    parser.add_argument("--markdown", help="also write the tables to this markdown file")
    args = parser.parse_args()
    training, inference = run(args.repeats, args.quick)
    tables = [
        "### Training throughput (samples/s, median of %d)\n\n" % args.repeats
        + _table(["case", "BetaVAE.fit", "plain PyTorch", "ratio (median of pairs)"], training,
                 ["{}", "{:.0f}", "{:.0f}", "{:.2f}"]),
        "### Inference throughput (samples/s, best of %d calls, median of %d)\n\n"
        % (INFERENCE_CALLS, args.repeats)
        + _table(["case", "method", "package", "plain no_grad", "ratio (median of pairs)"], inference,
                 ["{}", "{}", "{:.0f}", "{:.0f}", "{:.2f}"]),
    ]
    try:
        relative = run_relative_cost(args.repeats, args.quick)
        tables.append(
            "### Training step cost relative to BetaVAE (MLP, load_digits)\n\n"
            + _table(["estimator", "samples/s", "cost vs BetaVAE"], relative,
                     ["{}", "{:.0f}", "{:.2f}x"])
        )
    except ImportError:
        pass
    header = (
        f"Machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"sklearn-betavae {sklearn_betavae.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. Command: `python benchmarks/bench_speed.py"
        f" --repeats {args.repeats}{' --quick' if args.quick else ''}`"
    )
    text = header + "\n\n" + "\n\n".join(tables) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
