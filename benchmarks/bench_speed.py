"""Training and inference throughput of the estimators against plain PyTorch.

Each case runs ``BetaVAE.fit`` and a hand-written PyTorch loop over the very same
``nn.Module`` architecture, optimizer (Adam), learning rate, batch size, loss and
data, alternating the two, and reports the median samples/s of each and the
median ratio of the alternated pairs (package / plain; 1.0 means the convenience
costs nothing). Inference compares ``transform`` / ``inverse_transform`` with a
``torch.no_grad()`` forward of the same fitted module over the same batches and
codes, taking the best of several calls per repeat on each side ("training").
Then the step cost of ``BetaTCVAE``, ``FactorVAE`` (with its default discriminator
and the paper's) and ``DIPVAE`` relative to ``BetaVAE`` ("relative"), and each
``precision`` of the package, and the plain loop itself under bf16 autocast,
against the plain fp32 loop, with ``torch.compile`` of the plain loop ("precision").
The plain loop is built of torch's own layers: the package's decoder swaps
``nn.ConvTranspose2d`` for its subclass with a faster bf16 backward on the CPU,
which "deconv" times layer by layer against torch's (forward and backward of each
transposed convolution of the 64x64 decoder, bf16 autocast, channels_last), and
the "precision" group also runs the plain loop with the package's layers.
"steps" times, per training step of the default digits MLP (gradients in
place), an Adam update in each of torch's implementations (fused, the
package's; multi-tensor; the per-parameter loop, torch's CPU default), the
package's finiteness check of the gradients against ``isfinite().all()`` and an
infinity norm, and the copy of the weights the package keeps before each update
(restored if the next loss is not finite). "batches" counts the batches inference runs (each row at a batch
position given by a hash of its values, so colliding rows take extra batches)
against consecutive slices, for the digits and for 20,000 sprites.
"allocator" runs the plain loop and ``BetaVAE.fit`` each in a fresh process, with
and without glibc's mmap threshold primed (``sklearn_betavae._allocator``: the
package primes it at its first fit, a plain loop gets that state only from what the
process freed before), and counts the page faults per step. The other groups run in
this process after priming it, so both sides of each ratio share that state.

Usage::

    python benchmarks/bench_speed.py [--repeats 5]
        [--only training relative precision steps batches deconv allocator] [--markdown FILE]
"""

import argparse
import concurrent.futures
import multiprocessing
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits

import sklearn_betavae
from sklearn_betavae import BetaVAE, _allocator
from sklearn_betavae.exceptions import PosteriorCollapseWarning
from sklearn_betavae._losses import gaussian_kl_per_dim, reconstruction_log_likelihood
from sklearn_betavae._modules import ConvTranspose2d, build_vae_module


INFERENCE_CALLS = 5
# The groups of tables, for --only.
TABLES = ["training", "relative", "precision", "steps", "batches", "deconv", "allocator"]


def _with_torch_layers(module):
    """``module`` with each of the package's ``ConvTranspose2d`` replaced by torch's own
    ``nn.ConvTranspose2d`` of the same configuration and weights (in place)."""
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, ConvTranspose2d):
                plain = torch.nn.ConvTranspose2d(
                    child.in_channels, child.out_channels, child.kernel_size, child.stride,
                    child.padding, child.output_padding, child.groups, child.bias is not None,
                    child.dilation, child.padding_mode)
                plain.load_state_dict(child.state_dict())
                setattr(parent, name, plain)
    return module


def _plain_step(encode, decode, x, optimizer, autocast):
    """One step of the plain loop: forward passes under ``autocast``, loss in fp32."""
    with autocast:
        mu, logvar = encode(x)
    mu, logvar = mu.float(), logvar.float()
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    with autocast:
        logits = decode(z)
    recon = -reconstruction_log_likelihood(x, logits.float(), "bernoulli").mean()
    loss = recon + gaussian_kl_per_dim(mu, logvar).sum(1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    loss.item()  # the package reads the loss every step too (history)


def _plain_fit(X, n_components, image_shape, batch_size, epochs, seed, precision="fp32",
               channels_last=False, torch_layers=True):
    """The loop a user would write: float32 tensor up front, randperm, Adam.

    ``precision="bf16"`` runs the module's forward passes under bf16 autocast (loss
    in fp32) and ``channels_last`` converts the module's weights to that memory
    format: the hand-written reference for the package's precisions.
    ``torch_layers=False`` keeps the package's own transposed convolutions.
    """
    torch.manual_seed(seed)
    shape = None if image_shape is None else (1, *image_shape)
    module = build_vae_module(X.shape[1], n_components, None, shape)
    if torch_layers:
        module = _with_torch_layers(module)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    start = time.perf_counter()  # from the numpy array, like BetaVAE.fit
    data = torch.from_numpy(X).float()
    for _ in range(epochs):
        order = torch.randperm(len(data))
        for i in range(0, len(data), batch_size):
            _plain_step(module, module.decode, data[order[i : i + batch_size]], optimizer,
                        autocast)
    return epochs * len(X) / (time.perf_counter() - start), module


def _package_fit(X, n_components, image_shape, batch_size, epochs, seed, cls=BetaVAE, **params):
    # The plain loop runs in fp32 and without warm-up: so does the package, unless asked.
    params = {"precision": "fp32", "anneal_steps": 0, "verbose": 0, **params}
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
    # Four copies, each shifted by a little noise: distinct rows, as real data has
    # (inference places identical rows at one batch position, in different batches).
    copies = 1 if quick else 4
    noise = np.random.RandomState(0).uniform(0, 0.01, (copies, *X_digits.shape))
    X_digits = np.clip(np.concatenate([X_digits + n for n in noise]), 0, 1)
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


PRECISIONS = [
    # (label, precision, channels_last for the conv model)
    ("fp32", "fp32", False),
    ("fp32, channels_last", "fp32", True),
    ("bf16", "bf16", False),
    ("bf16, channels_last", "bf16", True),
]


def _plain_compiled_fit(X, n_components, image_shape, batch_size, epochs, seed, dtype):
    """The plain loop with ``torch.compile`` of the module (and bf16 autocast if asked).

    Returns the steady throughput (samples/s, after the first epoch) and the
    time of the first step, which includes the compilation.
    """
    torch.manual_seed(seed)
    shape = None if image_shape is None else (1, *image_shape)
    module = _with_torch_layers(build_vae_module(X.shape[1], n_components, None, shape))
    compiled = torch.compile(module)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    data = torch.from_numpy(X).float()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
    first_step, start, seen = None, None, 0
    for epoch in range(epochs + 1):
        if epoch == 1:
            start, seen = time.perf_counter(), 0
        order = torch.randperm(len(data))
        for i in range(0, len(data), batch_size):
            t0 = time.perf_counter()
            x = data[order[i : i + batch_size]]
            decode = compiled.decode if hasattr(compiled, "decode") else module.decode
            _plain_step(compiled, decode, x, optimizer, autocast)
            if first_step is None:
                first_step = time.perf_counter() - t0
            seen += len(x)
    return seen / (time.perf_counter() - start), first_step


def run_precision(repeats, quick=False):
    """Training and inference throughput of each precision against the plain fp32 loop.

    Also the held-out ELBO reached after the same steps (the same seed, data and
    schedule), relative to the package's fp32 model.
    """
    from sklearn_betavae import _base

    rows, quality = [], []
    for name, X, image_shape, batch_size, epochs in _cases(quick):
        n_components = 10
        X_eval = X[: min(len(X), 512)]
        variants = [v for v in PRECISIONS if image_shape is not None or not v[2]]
        _plain_fit(X[:256].astype(np.float32), n_components, image_shape, batch_size, 1, 0)
        speeds = {label: [] for label, _, _ in variants}
        inference = {label: [] for label, _, _ in variants}
        plain, plain_inference, elbo = [], [], {}
        # The hand-written loop at the other precisions: what the hardware gives.
        references = [v for v in variants if v[0] != "fp32"]
        plain_speeds = {label: [] for label, _, _ in references}
        package_layers = []
        for r in range(repeats):
            speed, module = _plain_fit(X, n_components, image_shape, batch_size, epochs, r)
            plain.append(speed)
            for label, precision, channels_last in references:
                plain_speeds[label].append(_plain_fit(X, n_components, image_shape, batch_size,
                                                      epochs, r, precision, channels_last)[0])
            if image_shape is not None:
                package_layers.append(_plain_fit(X, n_components, image_shape, batch_size,
                                                 epochs, r, "bf16", True, torch_layers=False)[0])
            plain_inference.append(max(
                _plain_inference(module, X, batch_size, n_components)[0]
                for _ in range(INFERENCE_CALLS)))
            for label, precision, channels_last in variants:
                saved = dict(_base._CHANNELS_LAST)
                _base._CHANNELS_LAST[precision] = channels_last
                try:
                    speed, vae = _package_fit(X, n_components, image_shape, batch_size, epochs,
                                              r, precision=precision)
                finally:
                    _base._CHANNELS_LAST.update(saved)
                speeds[label].append(speed)
                inference[label].append(max(
                    _package_inference(vae, X)[0] for _ in range(INFERENCE_CALLS)))
                if r == 0:
                    elbo[label] = vae.score(X_eval)
        for label, _, _ in references:
            train = _summary(plain_speeds[label], plain)
            rows.append((name, f"plain loop, {label}", train[0], train[2], None, None))
        if image_shape is not None:
            train = _summary(package_layers, plain)
            rows.append((name, "plain loop, bf16, channels_last, the package's layers",
                         train[0], train[2], None, None))
        for label, _, _ in variants:
            train = _summary(speeds[label], plain)
            infer = _summary(inference[label], plain_inference)
            rows.append((name, label, train[0], train[2], infer[0], infer[2]))
            quality.append((name, label, elbo[label],
                            100 * (elbo[label] - elbo["fp32"]) / abs(elbo["fp32"])))
    compiled = []
    for name, X, image_shape, batch_size, epochs in _cases(quick):
        for dtype in ("fp32", "bf16"):
            try:
                speed, first = _plain_compiled_fit(X, 10, image_shape, batch_size, epochs, 0, dtype)
            except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
                print(f"torch.compile failed for {name}, {dtype}: {exc}")
                continue
            base, _ = _plain_fit(X, 10, image_shape, batch_size, epochs, 0)
            compiled.append((name, dtype, speed, speed / base, first))
    return rows, quality, compiled


def run_relative_cost(repeats, quick=False):
    """Training step cost of each estimator relative to BetaVAE on the MLP case."""
    from sklearn_betavae import BetaTCVAE, DIPVAE, FactorVAE

    X = np.tile(load_digits().data / 16.0, (1 if quick else 2, 1))
    models = [("BetaVAE", BetaVAE, {}), ("BetaTCVAE", BetaTCVAE, {}),
              ("FactorVAE", FactorVAE, {}),
              ("FactorVAE, the paper's discriminator (6 x 1000)", FactorVAE,
               {"discriminator_hidden_layer_sizes": (1000,) * 6}),
              ("DIPVAE", DIPVAE, {})]
    # Round robin: each repeat fits every estimator once, so a drift in the machine's
    # load reaches all of them; the cost is the median of the per-repeat ratios.
    speeds = {name: [] for name, _, _ in models}
    for r in range(repeats):
        for name, cls, params in models:
            speeds[name].append(
                _package_fit(X, 10, None, 64, 1 if quick else 3, r, cls=cls, **params)[0]
            )
    base = speeds["BetaVAE"]
    return [(name, statistics.median(runs),
             statistics.median(b / s for b, s in zip(base, runs)))
            for name, runs in speeds.items()]


def _best_ms(fn, repeats, calls=200):
    """Best over ``repeats`` of the mean time of ``calls`` calls of ``fn``, in ms."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e3)
    return min(times)


def run_step_parts(repeats):
    """Per-step cost (ms) of the optimizer update and of the gradients' finiteness check."""
    from sklearn_betavae._net import _finiteness_probe

    X = torch.from_numpy(load_digits().data[:64] / 16.0).float()
    torch.manual_seed(0)
    module = build_vae_module(64, 8, None, None)
    mu, _ = module(X)
    (mu.square().sum() + module.decode(mu).square().sum()).backward()
    params = list(module.parameters())
    rows = []
    for name, kwargs in (("Adam, fused=True (the package)", {"fused": True}),
                         ("Adam, foreach=True (multi-tensor)", {"foreach": True}),
                         ("Adam, foreach=False (per-parameter loop)", {"foreach": False})):
        optimizer = torch.optim.Adam(params, lr=1e-9, **kwargs)
        rows.append((name, _best_ms(optimizer.step, repeats)))
    grads = [p.grad for p in params]
    rows.append(("finiteness: one sum per tensor (the package)",
                 _best_ms(lambda: bool(torch.isfinite(_finiteness_probe(grads))), repeats)))
    rows.append(("finiteness: isfinite().all() per tensor",
                 _best_ms(lambda: all(bool(torch.isfinite(g).all()) for g in grads), repeats)))
    rows.append(("finiteness: infinity norm (torch._foreach_norm)",
                 _best_ms(lambda: bool(torch.isfinite(torch.stack(
                     torch._foreach_norm(grads, ord=float("inf")))).all()), repeats)))
    copies = [p.detach().clone() for p in params]
    rows.append(("copy of the weights before the update (the package)",
                 _best_ms(lambda: torch._foreach_copy_(copies, [p.detach() for p in params]),
                          repeats)))
    return rows


def run_batch_counts():
    """Inference batches of ``transform`` against ``ceil(n / batch_size)`` slices."""
    from sklearn_betavae.datasets import make_sprites

    rows = []
    digits = load_digits().data / 16.0
    sprites, _ = make_sprites(20000, image_size=32, random_state=0)
    for name, X in (("load_digits (1,797 rows, 64 features)", digits),
                    ("make_sprites (20,000 rows, 32x32)", sprites)):
        batch_size = 64
        with warnings.catch_warnings():  # a one-epoch fit: only its net is used
            warnings.simplefilter("ignore", PosteriorCollapseWarning)
            vae = BetaVAE(n_components=2, batch_size=batch_size, max_epochs=1,
                          random_state=0).fit(X[:batch_size])
        calls = []

        def count(x, calls=calls):
            calls.append(len(x))
            return x[:, :1]

        vae.net_.infer_rows(X, count)
        slices = -(-len(X) // batch_size)
        rows.append((name, batch_size, len(calls), slices, len(calls) / slices))
    return rows


def run_deconv(repeats):
    """Forward + backward (ms) of each transposed convolution of the 64x64 decoder,
    torch's ``nn.ConvTranspose2d`` against the package's, bf16 autocast, channels_last,
    a batch of 64; best of ``repeats`` means of 10 calls, the two layers alternated."""
    module = build_vae_module(64 * 64, 10, None, (1, 64, 64))
    layers = [m for m in module.decoder.deconv if isinstance(m, ConvTranspose2d)]
    rows = []
    size = module.decoder.grid[1]  # the side of each layer's input map, doubling
    for layer in layers:
        ours = layer.to(memory_format=torch.channels_last)
        theirs = _with_torch_layers(torch.nn.Sequential(layer))[0].to(
            memory_format=torch.channels_last)
        x = torch.randn(64, layer.in_channels, size, size).contiguous(
            memory_format=torch.channels_last).requires_grad_()
        grad = torch.randn(64, layer.out_channels, 2 * size, 2 * size).contiguous(
            memory_format=torch.channels_last)

        def step(m, x=x, grad=grad):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = m(x)
            y.backward(grad)

        times = {id(ours): [], id(theirs): []}
        for _ in range(repeats):
            for m in (theirs, ours):
                times[id(m)].append(_best_ms(lambda m=m: step(m), 1, calls=10))
        torch_ms, ours_ms = min(times[id(theirs)]), min(times[id(ours)])
        name = (f"{layer.in_channels} -> {layer.out_channels}, {size}x{size} -> "
                f"{2 * size}x{2 * size}")
        rows.append((name, torch_ms, ours_ms, torch_ms / ours_ms))
        size *= 2
    return rows


# (label, side, precision, channels_last, allocator) of the fresh-process runs: the
# plain loop with torch's layers, or BetaVAE.fit; "cold" leaves the allocator as the
# process start left it, "primed" primes it first, "package" lets the fit do so.
ALLOCATOR_CASES = [
    ("plain loop, fp32", "plain", "fp32", False, "cold"),
    ("plain loop, fp32, allocator primed", "plain", "fp32", False, "primed"),
    ("plain loop, bf16, channels_last", "plain", "bf16", True, "cold"),
    ("plain loop, bf16, channels_last, allocator primed", "plain", "bf16", True, "primed"),
    ("BetaVAE.fit, precision='fp32'", "package", "fp32", False, "package"),
    ("BetaVAE.fit, precision='auto' (bf16, channels_last)", "package", "auto", True, "package"),
    ("BetaVAE.fit, precision='auto', allocator not primed", "package", "auto", True, "cold"),
]


def _allocator_child(case, path, image_shape, seed):
    """One run of ``case`` (see ``ALLOCATOR_CASES``) in this fresh process, on the data
    saved at ``path``: samples/s and minor page faults per training step, after a
    warm-up fit on 256 rows. ``numpy.load`` allocates the array and frees nothing
    large, so a "cold" run starts from the allocator's initial state."""
    import resource  # POSIX only: this group runs on Linux (glibc)

    _, side, precision, channels_last, allocator = case
    X = np.load(path)
    if allocator == "primed":
        _allocator.prime_allocator()
    elif allocator == "cold":  # the package's fit leaves it alone
        _allocator._primed = True
    batch_size, n_components = 64, 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        if side == "plain":
            def fit(X):
                return _plain_fit(X, n_components, image_shape, batch_size, 1, seed,
                                  precision, channels_last)[0]
        else:
            def fit(X):
                return _package_fit(X, n_components, image_shape, batch_size, 1, seed,
                                    precision=precision)[0]
        fit(X[:256])
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        speed = fit(X)
    steps = -(-len(X) // batch_size)
    return speed, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps


def run_allocator(repeats):
    """Each of ``ALLOCATOR_CASES`` in a fresh process, round robin, on the MLP and the
    conv case: median samples/s, median ratio to the cold plain fp32 run of the same
    repeat, median page faults per step."""
    context = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, X, image_shape, _, _) in enumerate(_cases(False)):
            path = os.path.join(tmp, f"{i}.npy")
            np.save(path, X)
            # channels_last: convolutions only
            cases = [case for case in ALLOCATOR_CASES if image_shape is not None or not case[3]]
            results = {case: [] for case in cases}
            for r in range(repeats):
                for case in cases:
                    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                        results[case].append(
                            pool.submit(_allocator_child, case, path, image_shape, r).result())
            base = [speed for speed, _ in results[cases[0]]]
            for case in cases:
                speeds = [speed for speed, _ in results[case]]
                rows.append((name, case[0], statistics.median(speeds),
                             statistics.median(s / b for s, b in zip(speeds, base)),
                             statistics.median(f for _, f in results[case])))
    return rows


def _table(header, rows, fmt):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("-" if v is None else f.format(v) for f, v in zip(fmt, row)) + " |"
              for row in rows]
    return "\n".join(lines)


def _precision_tables(repeats, quick):
    precision_rows, quality, compiled = run_precision(repeats, quick)
    return [
        "### Precision: throughput against the plain fp32 loop (samples/s, median of %d)\n\n"
        % repeats
        + _table(["case", "precision", "fit", "fit / plain fp32", "transform",
                  "transform / plain fp32"], precision_rows,
                 ["{}", "{}", "{:.0f}", "{:.2f}", "{:.0f}", "{:.2f}"]),
        "### Precision: held-out ELBO after the same steps (seed 0)\n\n"
        + _table(["case", "precision", "ELBO (nats)", "difference to fp32 (%)"], quality,
                 ["{}", "{}", "{:.2f}", "{:+.2f}"]),
        "### torch.compile of the plain loop (steady samples/s after the first epoch)\n\n"
        + _table(["case", "precision", "samples/s", "vs eager fp32 loop", "first step (s)"],
                 compiled, ["{}", "{}", "{:.0f}", "{:.2f}", "{:.1f}"]),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    parser.add_argument("--markdown", help="also write the tables to this markdown file")
    parser.add_argument("--only", nargs="+", choices=TABLES, default=TABLES,
                        help="the groups of tables to run (default: all)")
    args = parser.parse_args()
    # The in-process groups: both sides of each ratio with glibc's thresholds at their
    # maximum (the package's first fit would set them half-way through otherwise).
    _allocator.prime_allocator()
    tables = []
    if "training" in args.only:
        training, inference = run(args.repeats, args.quick)
        tables += [
            "### Training throughput (samples/s, median of %d)\n\n" % args.repeats
            + _table(["case", "BetaVAE.fit", "plain PyTorch", "ratio (median of pairs)"],
                     training, ["{}", "{:.0f}", "{:.0f}", "{:.2f}"]),
            "### Inference throughput (samples/s, best of %d calls, median of %d)\n\n"
            % (INFERENCE_CALLS, args.repeats)
            + _table(["case", "method", "package", "plain no_grad", "ratio (median of pairs)"],
                     inference, ["{}", "{}", "{:.0f}", "{:.0f}", "{:.2f}"]),
        ]
    if "relative" in args.only:
        relative = run_relative_cost(args.repeats, args.quick)
        tables.append(
            "### Training step cost relative to BetaVAE (MLP, load_digits)\n\n"
            + _table(["estimator", "samples/s", "cost vs BetaVAE"], relative,
                     ["{}", "{:.0f}", "{:.2f}x"])
        )
    if "precision" in args.only:
        tables += _precision_tables(args.repeats, args.quick)
    if "steps" in args.only:
        tables.append(
            f"### Parts of a training step (digits MLP, ms per step, best of {args.repeats})\n\n"
            + _table(["part", "ms per step"], run_step_parts(args.repeats), ["{}", "{:.3f}"])
        )
    if "batches" in args.only:
        tables.append(
            "### Inference batches (hash positions against consecutive slices)\n\n"
            + _table(["data", "batch_size", "inference batches", "consecutive slices", "ratio"],
                     run_batch_counts(), ["{}", "{}", "{}", "{}", "{:.2f}"])
        )
    if "deconv" in args.only:
        tables.append(
            "### Transposed convolutions of the 64x64 decoder, bf16, channels_last "
            f"(forward + backward, ms, best of {args.repeats})\n\n"
            + _table(["layer", "nn.ConvTranspose2d", "the package's", "speed-up"],
                     run_deconv(args.repeats), ["{}", "{:.2f}", "{:.2f}", "{:.2f}x"])
        )
    if "allocator" in args.only:
        tables.append(
            f"### Fresh processes: the allocator's state (median of {args.repeats})\n\n"
            + _table(["case", "run", "samples/s", "vs plain fp32 loop, cold",
                      "page faults per step"], run_allocator(args.repeats),
                     ["{}", "{}", "{:.0f}", "{:.2f}", "{:.0f}"])
        )
    header = (
        f"Machine: {_cpu_name()}, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, sklearn-betavae {sklearn_betavae.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. Command: `python benchmarks/bench_speed.py"
        f" --repeats {args.repeats}{' --quick' if args.quick else ''}"
        f"{'' if args.only == TABLES else ' --only ' + ' '.join(args.only)}`"
    )
    text = header + "\n\n" + "\n\n".join(tables) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    main()
