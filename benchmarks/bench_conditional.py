"""Conditional generation: does ``sample(..., conditions=...)`` draw what was asked for?

Two conditional models, each fitted on data with its class appended as one-hot
condition columns (``condition_features``):

- sprites at 32x32 conditioned on their shape (3 columns), at the budget of the
  disentanglement table (``bench_disentanglement.py``: same training sprites,
  steps, batch size, KL warm-up and number of components);
- scikit-learn's digits conditioned on their label (10 columns).

For each, a classifier trained on real data labels the model's samples,
``n_samples`` per class; reported: its accuracy on held-out real data (its
ceiling), on the model's reconstructions of that data (encoded, then decoded
under its own class) and the fraction of samples it recognises as the
requested class.
Digits: logistic regression on the pixels. Sprites (binarised at 0.5 like the
data), ``--judge``: ``fourier`` (the default, as the first tables were
measured), logistic regression on the magnitude of the 2-D Fourier transform,
which does not move with the sprite's position; ``cnn``, a small convolutional
network with a global max-pool, trained on sprites made a little wrong at
random (grown or shrunk by one pixel, up to 30% of the outline's pixels
flipped), so that a sample close to a sprite is judged by its shape rather
than by its exact rasterisation.

``--check-judge`` fits no VAE: it measures how well each sprites classifier
recognises real held-out sprites whose outline was changed a little (k pixels
on the sprite's edge flipped, or the sprite grown or shrunk by one pixel), i.e.
whether it can judge samples that are close to, but not exactly, a sprite; and
how it labels each held-out sprite averaged over its 40 orientations and
binarised, the image a decoder told the shape but not the orientation is
driven to draw.

Usage::

    python benchmarks/bench_conditional.py [--steps 3000] [--seeds 0 1 2]
        [--n-samples 200] [--n-jobs 2] [--judge cnn] [--beta 1.0] [--markdown FILE] [--quick]
    python benchmarks/bench_conditional.py --check-judge [--image-size 32]
"""

import argparse
import os
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_betavae
from bench_disentanglement import ANNEAL_STEPS, N_COMPONENTS, PRECISION, REGULARIZER_SCALE
from sklearn_betavae import BetaVAE
from sklearn_betavae.datasets import SpritesSampler, make_sprites


def fourier_magnitude(X, image_size):
    """``|FFT2|`` of each image: the same wherever the sprite sits in the image."""
    images = np.asarray(X, dtype=np.float32).reshape(-1, image_size, image_size)
    return np.abs(np.fft.rfft2(images)).reshape(len(images), -1)


def one_hot(labels, n_classes):
    return np.eye(n_classes)[labels]


def with_conditions(X, labels, n_classes):
    """``X`` with the one-hot ``labels`` appended as condition columns (in ``X``'s dtype)."""
    return np.hstack([X, one_hot(labels, n_classes).astype(X.dtype)])


class Case(NamedTuple):
    """One conditional model to evaluate: its training data (conditions last), the
    unfitted model, the judge with its input transform and its accuracy on real
    held-out data, and that held-out data ``(X_test with conditions, y_test)``."""

    X: np.ndarray
    n_classes: int
    model: BetaVAE
    classifier: object
    featurize: object
    ceiling: float
    held_out: tuple


def _dilate(x):
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _erode(x):
    return -F.max_pool2d(-x, 3, stride=1, padding=1)


def near_misses(x, generator):
    """Each binary image of ``x`` (N, 1, H, W) kept, grown or shrunk by one pixel (a third
    each), then up to 30% of its outline's pixels flipped (a rate drawn per image)."""
    n = len(x)
    choice = torch.randint(3, (n, 1, 1, 1), generator=generator)
    x = torch.where(choice == 1, _dilate(x), torch.where(choice == 2, _erode(x), x))
    edge = _dilate(x) - _erode(x)
    rate = 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
    flip = (torch.rand(x.shape, generator=generator) < rate).float() * edge
    return (x - flip).abs()


class CNNJudge:
    """A shape classifier of binary sprites robust to near-misses (``--judge cnn``).

    Three 3x3 convolutions and a max over positions (so the position does not
    matter), trained with Adam on :func:`near_misses` of the training sprites,
    freshly drawn at every step; ``predict`` and ``score`` take flat images.
    """

    def __init__(self, image_size, epochs=12, batch_size=128, random_state=0):
        self.image_size, self.epochs, self.batch_size = image_size, epochs, batch_size
        self.random_state = random_state

    def _images(self, X):
        x = torch.as_tensor(np.asarray(X, dtype=np.float32) > 0.5, dtype=torch.float32)
        return x.reshape(-1, 1, self.image_size, self.image_size)

    def fit(self, X, y):
        generator = torch.Generator().manual_seed(self.random_state)
        with torch.random.fork_rng(devices=[]):  # the layers' initial weights
            torch.manual_seed(self.random_state)
            self.net_ = torch.nn.Sequential(
                torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
                torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(),
                torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 3),
            )
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=1e-3)
        x, y = self._images(X), torch.as_tensor(y)
        for _ in range(self.epochs):
            for batch in torch.randperm(len(x), generator=generator).split(self.batch_size):
                loss = F.cross_entropy(self.net_(near_misses(x[batch], generator)), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return self

    def predict(self, X):
        with torch.no_grad():
            x = self._images(X)
            return torch.cat([self.net_(b).argmax(1) for b in x.split(1000)]).numpy()

    def score(self, X, y):
        return float((self.predict(X) == np.asarray(y)).mean())


def sprites_data(image_size, n_train):
    """``(X, shape, X_test, classes_test)``: the training sprites with their shape class,
    and 3,000 held-out ones with their five factor classes (shape first)."""
    X, _, classes = make_sprites(n_train, image_size=image_size, random_state=1000,
                                 return_classes=True)
    X_test, _, classes_test = make_sprites(3000, image_size=image_size, random_state=2000,
                                           return_classes=True)
    return X, classes[:, 0], X_test, classes_test


def sprites_judge(judge, image_size, X, shape):
    """The sprites' shape classifier ``judge``, fitted on ``X``: ``(classifier, featurize)``."""
    if judge == "cnn":
        def featurize(images):  # CNNJudge binarises its input itself
            return images

        classifier = CNNJudge(image_size)
    else:
        def featurize(images):
            return fourier_magnitude(images > 0.5, image_size)

        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    classifier.fit(featurize(X), shape)
    return classifier, featurize


def sprites_case(steps, n_train, batch_size, image_size, seed, judge="fourier", beta=1.0):
    """Sprites conditioned on shape: a :class:`Case`."""
    X, shape, X_test, classes_test = sprites_data(image_size, n_train)
    shape_test = classes_test[:, 0]
    classifier, featurize = sprites_judge(judge, image_size, X, shape)
    epochs = max(1, round(steps * batch_size / n_train))
    model = BetaVAE(n_components=N_COMPONENTS, image_shape=(image_size, image_size),
                    beta=beta, batch_size=batch_size, max_epochs=epochs,
                    anneal_steps=min(ANNEAL_STEPS, steps // 3),
                    condition_features=list(range(image_size**2, image_size**2 + 3)),
                    precision=PRECISION, regularizer_scale=REGULARIZER_SCALE,
                    random_state=seed)
    ceiling = classifier.score(featurize(X_test), shape_test)
    return Case(with_conditions(X, shape, 3), 3, model, classifier, featurize, ceiling,
                (with_conditions(X_test, shape_test, 3), shape_test))


def digits_case(steps, batch_size, seed):
    """Digits conditioned on their label: a :class:`Case`."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
    epochs = max(1, round(steps * batch_size / len(X_train)))
    # Without a warm-up, as measured before anneal_steps=0.3 became the default.
    model = BetaVAE(n_components=4, batch_size=batch_size, max_epochs=epochs, anneal_steps=0,
                    condition_features=list(range(64, 74)), random_state=seed)

    def featurize(images):
        return images

    classifier = LogisticRegression(max_iter=2000).fit(X_train, y_train)
    ceiling = classifier.score(X_test, y_test)
    return Case(with_conditions(X_train, y_train, 10), 10, model, classifier, featurize, ceiling,
                (with_conditions(X_test, y_test, 10), y_test))


def orientation_average(classes, image_size):
    """The sprites of factor ``classes``, each averaged over its orientations (shape,
    scale and position kept): the image that minimises the expected cross-entropy of
    a decoder told the shape but not the orientation."""
    sampler = SpritesSampler(image_size=image_size)
    n_orientations = sampler.n_values[2]
    total = np.zeros((len(classes), image_size**2))
    for orientation in range(n_orientations):
        rotated = classes.copy()
        rotated[:, 2] = orientation
        total += sampler.render(rotated)
    return total / n_orientations


def check_judge(image_size, n_train, seed=0):
    """Each sprites classifier's accuracy on real held-out sprites, exact and perturbed."""
    from scipy import ndimage

    X, shape, X_test, classes_test = sprites_data(image_size, n_train)
    shape_test = classes_test[:, 0]
    judges = {name: sprites_judge(name, image_size, X, shape) for name in ("fourier", "cnn")}
    sprites = (X_test > 0.5).reshape(-1, image_size, image_size)
    rng = np.random.default_rng(seed)

    def flip_edge(k):
        flipped = sprites.copy()
        for image in flipped:
            edge = np.flatnonzero(ndimage.binary_dilation(image) ^ ndimage.binary_erosion(image))
            image.reshape(-1)[rng.choice(edge, k, replace=False)] ^= True
        return flipped

    variants = {"exact": sprites}
    variants.update({f"{k} edge pixels flipped": flip_edge(k) for k in (1, 3, 6)})
    variants["grown by one pixel"] = np.stack([ndimage.binary_dilation(s) for s in sprites])
    variants["shrunk by one pixel"] = np.stack([ndimage.binary_erosion(s) for s in sprites])
    variants["averaged over its 40 orientations"] = (
        orientation_average(classes_test, image_size) > 0.5)
    lines = ["| real held-out sprites | " + " | ".join(f"`--judge {j}`" for j in judges) + " |",
             "|---|" + "---|" * len(judges)]
    for name, images in variants.items():
        flat = images.reshape(len(images), -1)
        accuracies = [classifier.score(featurize(flat), shape_test)
                      for classifier, featurize in judges.values()]
        lines.append(f"| {name} | " + " | ".join(f"{a:.3f}" for a in accuracies) + " |")
    return "\n".join(lines) + "\n"


def evaluate(case, n_samples, seed):
    """Fit the conditional model; the classifier's accuracy on real held-out data, on its
    reconstructions (decoded under their own class) and on samples."""
    X, n_classes, model, classifier, featurize, ceiling, (X_test, y_test) = case  # a Case
    start = time.perf_counter()
    model.fit(X)
    fit_time = time.perf_counter() - start
    requested = np.repeat(np.arange(n_classes), n_samples)
    samples = model.sample(len(requested), random_state=seed,
                           conditions=one_hot(requested, n_classes))
    data = samples[:, model.modelled_indices_]
    recognised = classifier.predict(featurize(data)) == requested
    per_class = [recognised[requested == c].mean() for c in range(n_classes)]
    # Held-out real data encoded and decoded under its own class.
    reconstructions = model.inverse_transform(model.transform(X_test))
    reconstructed = classifier.score(featurize(reconstructions[:, model.modelled_indices_]), y_test)
    return {"real accuracy": float(ceiling), "reconstructions recognised": float(reconstructed),
            "samples recognised": float(recognised.mean()),
            "worst class": float(min(per_class)), "fit (s)": fit_time}


def _run_seed(args, seed, n_threads):
    """Both cases for one seed (one joblib task)."""
    torch.set_num_threads(n_threads)
    cases = {
        "sprites by shape": sprites_case(args.steps, args.n_train, args.batch_size,
                                         args.image_size, seed, args.judge, args.beta),
        "digits by label": digits_case(args.steps, args.batch_size, seed),
    }
    scores = {name: evaluate(case, args.n_samples, seed) for name, case in cases.items()}
    for name, values in scores.items():
        print(name, seed, {k: round(v, 3) for k, v in values.items()}, flush=True)
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="optimisation steps per fit")
    parser.add_argument("--n-train", type=int, default=20000, help="training sprites")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-samples", type=int, default=200, help="samples per class")
    parser.add_argument("--n-jobs", type=int, default=1, help="seeds run in parallel")
    parser.add_argument("--judge", choices=["fourier", "cnn"], default="fourier",
                        help="the sprites' shape classifier (see above)")
    parser.add_argument("--beta", type=float, default=1.0,
                        help="the sprites model's beta (the digits model keeps 1)")
    parser.add_argument("--markdown")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script")
    parser.add_argument("--check-judge", action="store_true",
                        help="only measure the sprites classifier on perturbed real sprites")
    args = parser.parse_args()
    if args.check_judge:
        print(f"Machine: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}. Command: "
              f"`python benchmarks/bench_conditional.py --check-judge --image-size "
              f"{args.image_size} --n-train {args.n_train}`.\n")
        print(check_judge(args.image_size, args.n_train))
        return
    if args.quick:
        args.steps, args.n_train, args.seeds, args.n_samples = 30, 600, args.seeds[:1], 20
    n_threads = max(1, (os.cpu_count() or 1) // args.n_jobs)
    per_seed = Parallel(n_jobs=args.n_jobs)(
        delayed(_run_seed)(args, seed, n_threads) for seed in args.seeds
    )
    rows = {name: [scores[name] for scores in per_seed] for name in per_seed[0]}
    metrics = ["real accuracy", "reconstructions recognised", "samples recognised",
               "worst class", "fit (s)"]
    lines = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, runs in rows.items():
        cells = []
        for metric in metrics:
            values = np.array([r[metric] for r in runs])
            cells.append(f"{values.mean():.0f}" if metric == "fit (s)"
                         else f"{values.mean():.3f} ± {values.std():.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = (
        f"Machine: {os.cpu_count()} cores, torch {torch.__version__}, sklearn-betavae "
        f"{sklearn_betavae.__version__}, {time.strftime('%Y-%m-%d')}. Command: "
        f"`python benchmarks/bench_conditional.py --steps {args.steps} --n-train {args.n_train} "
        f"--image-size {args.image_size} --seeds {' '.join(map(str, args.seeds))} "
        f"--n-samples {args.n_samples} --n-jobs {args.n_jobs}"
        f"{'' if args.judge == 'fourier' else ' --judge ' + args.judge}"
        f"{'' if args.beta == 1.0 else f' --beta {args.beta:g}'}"
        f"{' --quick' if args.quick else ''}`; "
        f"{args.n_samples} samples per class; mean ± std over {len(args.seeds)} seeds.\n\n"
        + "\n".join(lines) + "\n"
    )
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
