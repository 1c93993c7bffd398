"""Size of a saved model in each format: pickle, joblib, save() and save(include_optimizer=True).

Fits models on scikit-learn's digits (scaled to [0, 1]) and writes each of
them in every format to a temporary folder. Prints a Markdown table: the
size of the encoder and decoder weights alone, of the JSON part of a
``save()`` file (parameters, fitted attributes and the training history,
which grows with the number of epochs) and of each file.

Usage::

    python benchmarks/bench_file_sizes.py [--epochs 10] [--markdown FILE]
"""

import argparse
import json
import os
import pickle
import tempfile

import joblib
import torch
from safetensors import safe_open
from sklearn.datasets import load_digits

import sklearn_betavae
from sklearn_betavae import BetaVAE, FactorVAE


def _models(epochs):
    shared = dict(n_components=10, max_epochs=epochs, random_state=0)
    return {
        "FactorVAE(hidden_layer_sizes=(8,))": FactorVAE(hidden_layer_sizes=(8,), **shared),
        "FactorVAE() (default architecture)": FactorVAE(**shared),
        "BetaVAE() (default architecture)": BetaVAE(**shared),
        "FactorVAE(discriminator_hidden_layer_sizes=(1000,) * 6) (the paper's)": FactorVAE(
            discriminator_hidden_layer_sizes=(1000,) * 6, **shared),
    }


def _size(nbytes):
    return f"{nbytes / 1e6:.2f} MB" if nbytes >= 1e5 else f"{nbytes / 1e3:.1f} kB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    X = load_digits().data / 16.0
    lines = [
        f"digits ({X.shape[0]} x {X.shape[1]}), n_components=10, {args.epochs} epochs, "
        f"torch {torch.__version__}, sklearn-betavae {sklearn_betavae.__version__}",
        "",
        "| model | encoder + decoder weights | JSON (of which history) | pickle | joblib "
        "| save() | save(include_optimizer=True) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name, model in _models(args.epochs).items():
            model.fit(X)
            weights = sum(p.numel() * p.element_size() for p in model.module_.parameters())
            sizes = {}
            for fmt in ("pickle", "joblib", "save", "save_optimizer"):
                path = os.path.join(folder, fmt)
                if fmt == "pickle":
                    with open(path, "wb") as file:
                        pickle.dump(model, file)
                elif fmt == "joblib":
                    joblib.dump(model, path)
                else:
                    sklearn_betavae.save(model, path, include_optimizer=fmt == "save_optimizer")
                sizes[fmt] = os.path.getsize(path)
            with safe_open(os.path.join(folder, "save"), framework="pt") as file:
                document = file.metadata()["sklearn_betavae"]
            history = len(json.dumps(json.loads(document)["net"]["history"], separators=(",", ":")))
            lines.append(
                f"| {name} | {_size(weights)} | {_size(len(document))} ({_size(history)}) | "
                + " | ".join(_size(sizes[fmt]) for fmt in sizes) + " |"
            )
            print(lines[-1], flush=True)
    if args.markdown:
        with open(args.markdown, "w") as file:
            file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
