"""Peak memory of fitting on the whole sprites grid, in memory and as a memmap.

Generates the full 737,280-image dSprites grid at 64x64 as uint8 (~3 GB),
then trains the convolutional ``BetaVAE`` on it for a fixed number of
minibatches (shuffled over the whole grid) and reports the process's peak
resident anonymous memory (``RssAnon``, sampled every 10 ms) against the size
of the data. Target: peak <= data + 1.5 GB. The second case writes the grid to
a ``.npy`` file and trains on ``numpy.load(..., mmap_mode="r")``: the file is
read batch by batch, so anonymous memory stays far below the data size (pages
of the mapped file are page cache, not the process's own memory).

Usage::

    python benchmarks/bench_memory.py [--steps 200] [--image-size 64] [--markdown FILE]
"""

import argparse
import os
import tempfile
import threading
import time

import numpy as np
import torch
from skorch.callbacks import Callback

import sklearn_betavae
from sklearn_betavae import BetaVAE
from sklearn_betavae.datasets import make_sprites

GB = 1024**3


def _rss_anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class _PeakSampler:
    """Sample RssAnon in a thread; ``peak`` is the maximum seen."""

    def __enter__(self):
        self.peak = _rss_anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_anon())
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_anon())


class _StopAfter(Callback):
    """End training (as Ctrl-C would) after ``steps`` minibatches."""

    def __init__(self, steps):
        self.steps = steps

    def on_batch_end(self, net, training=False, **kwargs):
        if training and net.n_steps_ >= self.steps:
            raise KeyboardInterrupt


def _fit(X, image_size, steps):
    vae = BetaVAE(n_components=10, image_shape=(image_size, image_size), max_epochs=1,
                  random_state=0, callbacks=[_StopAfter(steps)])
    start = time.perf_counter()
    vae.fit(X)
    return vae, time.perf_counter() - start


def run(steps, image_size):
    rows = []
    with _PeakSampler() as generation:
        X, _ = make_sprites(image_size=image_size)
    data = X.nbytes
    baseline = _rss_anon()
    with _PeakSampler() as fitting:
        vae, seconds = _fit(X, image_size, steps)
        vae.transform(X[:10000])
    rows.append(("in-memory uint8", X.shape[0], data / GB, generation.peak / GB,
                 fitting.peak / GB, (fitting.peak - baseline) / GB, seconds))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sprites.npy")
        np.save(path, X)
        del X, vae
        mapped = np.load(path, mmap_mode="r")
        baseline = _rss_anon()
        with _PeakSampler() as fitting:
            vae, seconds = _fit(mapped, image_size, steps)
            vae.transform(mapped[:10000])
        rows.append(("numpy.memmap (mode r)", mapped.shape[0], data / GB, float("nan"),
                     fitting.peak / GB, (fitting.peak - baseline) / GB, seconds))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training minibatches per case")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    rows = run(args.steps, args.image_size)
    header = ["input", "n_samples", "data (GB)", "peak while generating (GB)",
              "peak while fitting (GB)", "fit minus before-fit (GB)", "fit time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, n, data, gen, peak, extra, seconds in rows:
        lines.append(f"| {name} | {n} | {data:.2f} | {gen:.2f} | {peak:.2f} | {extra:.2f} | "
                     f"{seconds:.0f} |")
    text = (
        f"Machine: {os.cpu_count()} cores, torch {torch.__version__}, sklearn-betavae "
        f"{sklearn_betavae.__version__}, {time.strftime('%Y-%m-%d')}. Command: "
        f"`python benchmarks/bench_memory.py --steps {args.steps} --image-size {args.image_size}`."
        f" Memory is the process's resident anonymous memory (RssAnon).\n\n"
        + "\n".join(lines) + "\n"
    )
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
