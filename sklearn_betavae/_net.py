"""The skorch ``NeuralNet`` that trains every VAE of the package.

skorch provides the loop, callbacks, history and device handling; this module
adds what a VAE needs on top of it:

- a batch-level data path (:class:`ArrayDataset`, :class:`BatchIterator`): one
  fancy-indexing per batch and the cast to float32 on the device, so a large
  ``uint8`` or ``numpy.memmap`` X is never copied whole; rows travel whole
  (condition columns included, the module splits them) and, for the
  supervised term, each training batch brings labelled rows and their targets;
- :class:`VAEObjective`, the base of the training objectives: reconstruction
  plus a regulariser each estimator supplies, returning ``(loss, logs)``;
- :class:`VAENet`, whose ``infer`` draws the reparameterised sample from its own
  generator and whose ``get_loss`` runs the objective and records its terms.
"""

import contextlib
import math
import sys
import warnings

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, EpochTimer, PassthroughScoring, PrintLog
from skorch.dataset import unpack_data
from skorch.exceptions import DeviceWarning
from skorch.utils import TeeGenerator, to_tensor
from torch import nn
from tqdm import tqdm

from ._losses import (
    free_bits_kl,
    gaussian_kl_per_dim,
    kl_decomposition,
    reconstruction_log_likelihood,
    supervised_loss,
)
from ._random import row_keys
from ._schedules import linear_ramp
from .exceptions import TrainingDivergedError

# Lower precisions of the autocast context: the "precision" of VAENet.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Inference hashes X in blocks of about this many values (a few MB of temporaries,
# whatever the size of X).
_HASH_BLOCK_VALUES = 2**18
# Seed of the row hash that places each row in its inference batch.
_POSITION_SEED = 0


def portable_precision(precision, device):
    """``precision``, or ``"fp32"`` with a warning where ``device`` cannot run it.

    fp16 trains with loss scaling, which the package supports on CUDA only: a
    model trained in fp16 and unpickled or loaded on a machine without CUDA
    runs in fp32 there (bf16 and fp32 run on every device).
    """
    if precision == "fp16" and torch.device(device).type != "cuda":
        warnings.warn(
            f"The model was trained in fp16, which needs CUDA; on device {device!r} it "
            "runs in fp32.",
            DeviceWarning,
            stacklevel=3,
        )
        return "fp32"
    return precision


def loading_device(device, stacklevel=4):
    """Where a net saved or pickled on ``device`` loads on this machine.

    ``device`` itself if this machine has it, else the CPU, with a warning;
    ``"cuda:N"`` from a machine with more GPUs than this one loads on ``"cuda"``
    (the current GPU), with a warning. ``load`` and unpickling both use it.
    """
    parsed = torch.device(device)
    kind = parsed.type
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if kind == "cuda" and available["cuda"] and (parsed.index or 0) >= torch.cuda.device_count():
        warnings.warn(
            f"The model was saved on device {device!r}, but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s); loading it on 'cuda'.",
            DeviceWarning,
            stacklevel=stacklevel,
        )
        return "cuda"
    if available.get(kind, False):
        return device
    warnings.warn(
        f"The model was saved on device {device!r}, which is not available here; "
        "loading it on the CPU.",
        DeviceWarning,
        stacklevel=stacklevel,
    )
    return "cpu"


def _fresh_scaler(scaler, device):
    """A new fp16 gradient scaler with ``scaler``'s scale and growth tracker.

    What a step stopped between ``unscale_`` and ``update`` (a divergence, an
    interrupt) leaves in a scaler, its per-optimizer state, is dropped: that
    state makes the scaler refuse the next ``unscale_`` and pickling.
    """
    if scaler is None or not scaler.is_enabled():
        return scaler
    fresh = torch.amp.GradScaler(torch.device(device).type)
    fresh.load_state_dict(scaler.state_dict())
    return fresh


def _batches_by_position(positions, batch_size):
    """Batches in which every row takes the position ``positions[row]``.

    The k-th row (in the order of X) of each position goes to batch k, so a
    batch never holds two rows at one position. Yields ``(rows, slots)``
    with the rows in increasing order (sequential reads of a memmap) and
    their positions.
    """
    n_samples = len(positions)
    by_position = np.argsort(positions, kind="stable")
    counts = np.bincount(positions, minlength=batch_size)
    rank = np.empty(n_samples, dtype=np.intp)
    rank[by_position] = np.arange(n_samples) - np.repeat(np.cumsum(counts) - counts, counts)
    order = np.lexsort((np.arange(n_samples), rank))
    bounds = np.cumsum(np.bincount(rank))
    for start, stop in zip(np.concatenate([[0], bounds[:-1]]), bounds):
        rows = order[start:stop]
        yield rows, positions[rows]


def _hash_block(X):
    """Rows of X read at a time by inference's hashing and comparisons (bounded memory)."""
    return max(1, _HASH_BLOCK_VALUES // max(1, math.prod(X.shape[1:])))


def _distinct_rows(X, keys):
    """The rows of X to compute, and each row's index among them.

    Rows with equal float32 values get one batch position, one noise key and
    one computation, hence one result: only the first of them is computed.
    Rows are matched by ``keys`` (their content hashes), then compared, since
    a 64-bit hash can collide. Returns ``(None, None)`` when every row is
    distinct (the common case, at the cost of one sort of the keys).
    """
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if len(first) == len(keys):
        return None, None
    rows = np.arange(len(keys))
    candidate = first[inverse.reshape(-1)]  # the first row with each row's key
    later = np.flatnonzero(candidate != rows)
    equal = np.empty(len(later), dtype=bool)
    block = _hash_block(X)
    for start in range(0, len(later), block):
        some = later[start : start + block]
        mine = np.asarray(X[some], dtype=np.float32).reshape(len(some), -1)
        theirs = np.asarray(X[candidate[some]], dtype=np.float32).reshape(len(some), -1)
        equal[start : start + block] = (mine == theirs).all(axis=1)
    copies = later[equal]
    computed = np.setdiff1d(rows, copies, assume_unique=True)
    source = rows.copy()
    source[copies] = candidate[copies]
    return computed, np.searchsorted(computed, source)


def _finiteness_probe(tensors):
    """A 0-d tensor that is finite exactly when every value of ``tensors`` is.

    The sum of all values: NaN or inf as soon as one value is (a sum of
    finite values overflows only beyond 3.4e38, where training has diverged
    anyway). One small reduction per tensor and no copy: about 7x cheaper on
    the CPU than ``torch._foreach_norm(..., ord=inf)`` or ``isfinite().all()``
    (0.035 ms against 0.25 to 0.29 ms a step for the default MLP;
    ``benchmarks/bench_speed.py --only steps``).
    """
    return torch.stack([t.sum(dtype=torch.float32) for t in tensors]).sum()


class ArrayDataset(torch.utils.data.Dataset):
    """Rows of a 2-D array (any dtype, memmaps included), optionally a subset.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Kept by reference: never copied or cast as a whole.
    indices : ndarray of int or None
        Rows of ``X`` that make up this dataset; ``None`` means all of them.
    targets : ndarray of shape (n_samples, n_factors) or None, default=None
        float32 targets of the supervised term for the rows of ``X`` (NaN
        where a factor is unknown), indexed like ``X``.
    """

    def __init__(self, X, indices=None, targets=None):
        self.X = X
        self.indices = indices
        self.targets = targets

    def __len__(self):
        return len(self.X) if self.indices is None else len(self.indices)

    def __getitem__(self, i):
        return self.take(np.array([i]))[0]

    def take(self, positions):
        """Rows at ``positions`` (a slice or sorted int array) as a torch tensor.

        The dtype is left as it is (uint8 stays uint8): the cast to float32
        happens on the device, per batch.
        """
        block = np.asarray(self.X[self._rows(positions)])
        if not (block.flags.writeable and block.flags.c_contiguous):
            # Slices of read-only arrays or memmaps: torch needs its own memory.
            block = np.array(block, order="C")
        return torch.from_numpy(block)

    def take_targets(self, positions):
        """Targets of the rows at ``positions``, as a float32 torch tensor."""
        return torch.from_numpy(np.ascontiguousarray(self.targets[self._rows(positions)]))

    def labelled_positions(self):
        """Positions of the rows with at least one known target (none without targets)."""
        if self.targets is None:
            return np.empty(0, dtype=np.intp)
        known = ~np.isnan(self.targets[self._rows(slice(None))]).all(axis=1)
        return np.flatnonzero(known)

    def subset(self, positions):
        """A dataset of the rows at ``positions`` of this one, sharing ``X`` and the targets."""
        positions = np.asarray(positions)
        return ArrayDataset(
            self.X, self._rows(positions), targets=self.targets
        )

    def _rows(self, positions):
        """Rows of ``X`` at ``positions`` of this dataset."""
        return positions if self.indices is None else self.indices[positions]


class BatchIterator:
    """Minibatches of an :class:`ArrayDataset`, one array indexing per batch.

    Replaces ``torch.utils.data.DataLoader``, whose per-sample ``__getitem__``
    and collation dominate the step time of small models. Yields
    ``(rows, labelled)``: ``labelled`` is ``None``, or, with
    ``labelled_batch_size``, ``(rows, targets)`` of that many labelled rows
    drawn uniformly with replacement from the dataset's labelled rows, anew
    for every batch: oversampling, so that every batch carries labelled rows
    however few there are (as in Locatello et al. 2020, whose batches pair
    unlabelled with labelled observations). The batches of ``rows`` still
    cover the dataset once per epoch, labelled rows included.

    Parameters
    ----------
    dataset : ArrayDataset
    batch_size : int
    shuffle : bool, default=False
        Draw a new permutation each epoch from ``generator``.
    generator : torch.Generator or None
        Source of the permutation and of the labelled draws (CPU generator).
    labelled_batch_size : int, default=0
        Labelled rows drawn per batch; 0 for none.
    """

    def __init__(self, dataset, batch_size, shuffle=False, generator=None, labelled_batch_size=0):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.labelled_batch_size = labelled_batch_size
        self._labelled = dataset.labelled_positions() if labelled_batch_size else None
        if labelled_batch_size and not len(self._labelled):
            raise ValueError(
                "No labelled row is left to train the supervised term on (all of them "
                "were held out for early stopping?): label more rows or set "
                "early_stopping=False."
            )

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        n_samples = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(n_samples, generator=self.generator).numpy()
        for start in range(0, n_samples, self.batch_size):
            if self.shuffle:
                # Sorted rows read a memmap sequentially; the batch is a set anyway.
                positions = np.sort(order[start : start + self.batch_size])
            else:
                positions = slice(start, start + self.batch_size)
            yield self.dataset.take(positions), self._labelled_batch()

    def _labelled_batch(self):
        """``(rows, targets)`` of ``labelled_batch_size`` labelled rows, or ``None``."""
        if not self.labelled_batch_size:
            return None
        draw = torch.randint(
            len(self._labelled), (self.labelled_batch_size,), generator=self.generator
        ).numpy()
        positions = np.sort(self._labelled[draw])  # sorted reads, as for the batches
        return self.dataset.take(positions), self.dataset.take_targets(positions)


class HoldoutSplit:
    """skorch ``train_split``: hold out a fixed random fraction for validation.

    Parameters
    ----------
    fraction : float in (0, 1)
        Fraction of the samples used for validation.
    seed : int
        Seed of the split permutation.
    """

    def __init__(self, fraction, seed):
        self.fraction = fraction
        self.seed = seed

    def n_valid(self, n_samples):
        """Number of validation samples for ``n_samples`` samples."""
        n_valid = max(1, int(round(self.fraction * n_samples)))
        if n_valid >= n_samples:
            raise ValueError(
                f"validation_fraction={self.fraction} leaves no training sample out of "
                f"n_samples={n_samples}; use more samples or early_stopping=False."
            )
        return n_valid

    def __call__(self, dataset, y=None, **fit_params):
        n_valid = self.n_valid(len(dataset))
        order = np.random.RandomState(self.seed).permutation(len(dataset))
        return dataset.subset(np.sort(order[n_valid:])), dataset.subset(np.sort(order[:n_valid]))


# Column titles of the verbose=2 table for the history's keys (without "train_"/"valid_").
READABLE_LOG_NAMES = {
    "loss": "loss",
    "reconstruction": "distortion",
    "kl": "KL (rate)",
    "mi": "MI",
    "tc": "TC",
    "dwkl": "dim-wise KL",
    "tcvae_mi": "MI (obj.)",
    "tcvae_tc": "TC (obj.)",
    "tcvae_dwkl": "dim-wise KL (obj.)",
    "tc_estimate": "TC (discr.)",
    "discriminator_loss": "discr. loss",
    "discriminator_accuracy": "discr. acc.",
    "dip_penalty": "DIP penalty",
    "supervised": "supervised",
    "capacity": "capacity C",
    "gamma": "gamma",
    "beta": "beta",
    "dur": "time (s)",
}


def readable_log_name(key):
    """A history key as a column title: ``valid_kl`` -> ``"valid KL (rate)"``."""
    for prefix, title in (("train_", ""), ("valid_", "valid ")):
        if key.startswith(prefix):
            name = key[len(prefix) :]
            return title + READABLE_LOG_NAMES.get(name, name.replace("_", " "))
    return READABLE_LOG_NAMES.get(key, key.replace("_", " "))


class ReadablePrintLog(PrintLog):
    """skorch's per-epoch table (``verbose=2``) with readable column titles."""

    def _yield_keys_formatted(self, row):
        for key, formatted in super()._yield_keys_formatted(row):
            yield readable_log_name(key), formatted


class ProgressBar(Callback):
    """One progress bar for a whole fit (``verbose=1``), at most ``ncols`` characters wide.

    A tqdm bar over all the minibatches of the training, with the epoch, the
    last epoch's loss and KL (and validation loss), the elapsed time and the
    estimated time left, written to ``file`` (standard error by default).
    """

    def __init__(self, file=None, ncols=100):
        self.file = file
        self.ncols = ncols

    def on_train_begin(self, net, **kwargs):
        self.close()
        self.epoch_ = 0

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        self.epoch_ += 1
        if self.bar_ is None:
            self.epochs_ = getattr(net, "planned_epochs_", None) or net.max_epochs
            per_epoch = math.ceil(len(dataset_train) / net.batch_size) if dataset_train else 1
            self.bar_ = tqdm(
                total=per_epoch * self.epochs_,
                desc=f"epoch 1/{self.epochs_}",
                unit="batch",
                ncols=self.ncols,
                file=self.file if self.file is not None else sys.stderr,
                leave=True,
                dynamic_ncols=False,
            )
        self.bar_.set_description(f"epoch {self.epoch_}/{self.epochs_}", refresh=False)

    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.bar_ is not None:
            self.bar_.update(1)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        postfix = {"loss": f"{row.get('train_loss', float('nan')):.4g}"}
        if "train_kl" in row:
            postfix["KL"] = f"{row['train_kl']:.3g}"
        if "valid_loss" in row:
            postfix["valid"] = f"{row['valid_loss']:.4g}"
        self.bar_.set_postfix(postfix, refresh=True)

    def on_train_end(self, net, **kwargs):
        self.close()

    def close(self):
        """Close the bar, if one is open (also after a failed fit)."""
        if getattr(self, "bar_", None) is not None:
            self.bar_.close()
        self.bar_ = None


class VAEObjective(nn.Module):
    """Base of the training objectives: ``-E_q[log p(x|z)] + regulariser``.

    Subclasses implement :meth:`regularizer` only. ``forward`` returns the
    loss to minimise and a dict of detached terms for the history: the
    reconstruction term (distortion), the KL (rate) in total and per
    dimension, and, for every model, the diagnostic split of the KL into
    index-code mutual information, total correlation and dimension-wise KL
    (Chen et al. 2018, minibatch stratified sampling) on the first minibatch
    of each epoch (it costs O(B^2 D)), so that all models can be compared on
    one scale.

    Every model shares one more term: given ``supervision``, the posterior
    means and targets of labelled rows, ``supervision_weight`` times
    :func:`~sklearn_betavae._losses.supervised_loss` (Locatello et al.
    2020), logged as ``"supervised"`` (unweighted).

    Parameters
    ----------
    likelihood : {"bernoulli", "continuous_bernoulli", "gaussian"}
    dataset_size : int
        Number of training samples ``N`` (for the TC estimators). A call may
        give another (the validation set's, for validation batches).
    anneal_steps : int
        Length of the linear warm-up of the regulariser's main weight.
    free_bits : float
        ``lambda`` of :func:`~sklearn_betavae._losses.free_bits_kl`, in nats.
    regularizer_scale : float, default=1.0
        Multiplies the whole regulariser (:meth:`scaled`), every weight of it
        alike, against the reconstruction term.
    supervision_weight : float, default=0.0
        Weight of the supervised term.
    supervision_loss : {"xent", "l2", "cov"}, default="xent"
        The supervised term's variant.
    """

    #: logs holding one value per latent dimension (not printed by PrintLog)
    vector_logs = ("kl_per_dim",)

    def __init__(
        self,
        *,
        likelihood,
        dataset_size,
        anneal_steps=0,
        free_bits=0.0,
        regularizer_scale=1.0,
        supervision_weight=0.0,
        supervision_loss="xent",
    ):
        super().__init__()
        self.likelihood = likelihood
        self.dataset_size = dataset_size
        self.anneal_steps = anneal_steps
        self.free_bits = free_bits
        self.regularizer_scale = regularizer_scale
        self.supervision_weight = supervision_weight
        self.supervision_loss = supervision_loss

    def forward(
        self, x, mu, logvar, z, decoded, step, diagnose=False, generator=None, supervision=None,
        dataset_size=None,
    ):
        # The N that the TC estimators weight the minibatch by: the training set's by
        # default, the validation set's for validation batches.
        n = self.dataset_size if dataset_size is None else dataset_size
        kl_per_dim = gaussian_kl_per_dim(mu, logvar)
        reconstruction = -reconstruction_log_likelihood(x, decoded, self.likelihood).mean()
        penalty, logs = self.regularizer(
            mu=mu, logvar=logvar, z=z, kl_per_dim=kl_per_dim, step=step, generator=generator,
            dataset_size=n,
        )
        loss = reconstruction + self.scaled(penalty)
        if supervision is not None:
            supervised = supervised_loss(*supervision, loss=self.supervision_loss)
            loss = loss + self.supervision_weight * supervised
            logs = {**logs, "supervised": supervised.detach()}
        logs = {
            "loss": loss.detach(),
            "reconstruction": reconstruction.detach(),
            "kl": kl_per_dim.detach().sum(1).mean(),
            "kl_per_dim": kl_per_dim.detach().mean(0),
            **logs,
        }
        if diagnose:
            # O(B^2 D): done on one minibatch per epoch, not on every step.
            with torch.no_grad():
                parts = kl_decomposition(z, mu, logvar, n, estimator="mss", generator=generator)
            logs.update({key: value.mean() for key, value in parts.items()})
        return loss, logs

    def regularizer(self, *, mu, logvar, z, kl_per_dim, step, generator, dataset_size):
        """The model's penalty and its logs; see the subclasses.

        ``generator`` (on the device) is the net's noise generator, for
        penalties that draw random numbers (e.g. stratified sampling);
        ``dataset_size`` the ``N`` of the TC estimators for this batch.
        """
        raise NotImplementedError

    def scaled(self, penalty):
        """``regularizer_scale * penalty``: a term of the regulariser as it enters the loss."""
        return self.regularizer_scale * penalty

    def annealed(self, weight, step):
        """``min(1, step / anneal_steps) * weight``: the weight in force at ``step``."""
        return linear_ramp(step, self.anneal_steps, weight)

    def kl_term(self, kl_per_dim):
        """Batch-mean KL, with free bits per dimension when ``free_bits > 0``."""
        if self.free_bits > 0:
            return free_bits_kl(kl_per_dim, self.free_bits)
        return kl_per_dim.sum(1).mean()


class VAENet(NeuralNet):
    """skorch net training a :class:`~sklearn_betavae._modules.VAEModule`.

    ``criterion`` is a :class:`VAEObjective` instance. ``infer`` returns
    ``(x, mu, logvar, z, decoded)`` with ``z`` reparameterised from the net's
    own noise generator (``x`` the data columns of the rows, without their
    conditions); ``get_loss`` evaluates the objective at the current
    optimisation step, with the posterior means of the batch's labelled rows
    when it carries some (``labelled_batch_size``), and keeps its terms;
    ``train_step`` backpropagates,
    then records the terms and checks the loss and the gradients for
    finiteness in one device sync, before the optimizer steps;
    ``on_epoch_end`` averages the terms (weighted by batch size) into
    per-epoch history entries ``train_<term>`` / ``valid_<term>``, plus
    ``beta``, the weight in force. :meth:`infer_rows` runs the module for
    inference, in fixed-size batches.

    Parameters
    ----------
    *args, **kwargs
        Those of :class:`skorch.NeuralNet`.
    labelled_batch_size : int, default=0
        Labelled rows drawn for the supervised term with each training batch
        (see :class:`BatchIterator`); 0 for none.
    """

    def __init__(
        self, *args, clip_grad_norm=None, precision="fp32", labelled_batch_size=0, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.clip_grad_norm = clip_grad_norm
        self.precision = precision
        self.labelled_batch_size = labelled_batch_size

    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]
        if self.verbose >= 2:
            ignored = [f"{p}_{k}" for p in ("train", "valid") for k in self.criterion.vector_logs]
            callbacks.append(("print_log", ReadablePrintLog(keys_ignored=ignored)))
        elif self.verbose == 1:
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks

    def initialize(self):
        super().initialize()
        # fp16 gradients underflow without loss scaling (CUDA only, see the estimators).
        self.grad_scaler_ = (
            torch.amp.GradScaler(torch.device(self.device).type) if self.precision == "fp16" else None
        )
        self.n_steps_ = 0
        self.planned_epochs_ = None
        self.interrupted_ = False
        self._diagnose = set()
        self._pending_logs = None
        self._last_finite = None
        self._n_valid = None  # the validation set's size, set by get_split_datasets
        return self

    def _set_training(self, training=True):
        # skorch switches every submodule's mode at every batch; skip when already set.
        if self.module_.training != training:
            super()._set_training(training)

    def seed_generators(self, seed):
        """Seed the shuffling and reparameterisation generators (never the global RNG)."""
        shuffle_seed, noise_seed = np.random.SeedSequence([seed, self.n_steps_]).generate_state(2)
        self._shuffle_generator = torch.Generator().manual_seed(int(shuffle_seed))
        self._noise_generator = torch.Generator(device=self.device).manual_seed(int(noise_seed))

    def get_iterator(self, dataset, training=False):
        if training:
            return BatchIterator(
                dataset,
                self.batch_size,
                shuffle=True,
                generator=self._shuffle_generator,
                labelled_batch_size=self.labelled_batch_size,
            )
        return BatchIterator(dataset, self.batch_size)

    def to_device(self, x):
        """Move a batch to the device as float32.

        float64 rows are cast on the host (half the copy, and MPS has no
        float64); uint8 and bool rows, smaller than float32, are cast on the
        device.
        """
        if torch.is_tensor(x) and x.dtype == torch.float64:
            x = x.to(torch.float32)
        return to_tensor(x, device=self.device).to(torch.float32)

    def autocast(self):
        """The precision context every module call runs in (forward passes only).

        ``"fp32"``: none. ``"bf16"`` / ``"fp16"``: :func:`torch.autocast` on the
        net's device, so matrix products and convolutions run in the lower
        precision; the parameters, their gradients and the optimizer stay in
        float32, and :meth:`encode` / :meth:`decode` return float32, so that the
        losses and the KL / TC reductions are computed in float32.
        """
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(
            device_type=torch.device(self.device).type, dtype=AUTOCAST_DTYPES[self.precision]
        )

    def encode(self, x, c=None):
        """Posterior parameters ``(mu, logvar)`` of data columns ``x`` (conditions ``c``), in float32."""
        with self.autocast():
            mu, logvar = self.module_.encode(x, c)
        return mu.float(), logvar.float()

    def encode_rows(self, rows):
        """Posterior parameters of full rows of X (data and condition columns), in float32."""
        return self.encode(*self.module_.split(rows))

    def decode(self, z, c=None):
        """Decoder output (logits or means) of codes ``z`` (conditions ``c``), in float32."""
        with self.autocast():
            decoded = self.module_.decode(z, c)
        return decoded.float()

    def infer(self, x, **fit_params):
        x, c = self.module_.split(self.to_device(x))
        mu, logvar = self.encode(x, c)
        eps = torch.randn(
            mu.shape, generator=self._noise_generator, device=mu.device, dtype=mu.dtype
        )
        z = mu + torch.exp(0.5 * logvar) * eps
        return x, mu, logvar, z, self.decode(z, c)

    def backward(self, loss, grad_scaler):
        """``loss.backward()``, through ``grad_scaler`` when there is one (fp16)."""
        (loss if grad_scaler is None else grad_scaler.scale(loss)).backward()

    def train_step_single(self, batch, **fit_params):
        # skorch's, with the loss scaling of fp16 training.
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.backward(loss, self.grad_scaler_)
        return {"loss": loss, "y_pred": y_pred}

    def check_gradients(self, optimizer, parameters, logs, grad_scaler):
        """Record ``logs`` and check the loss and the gradients of ``parameters``.

        One device sync for both (see :meth:`record_logs`, which raises on
        non-finite values). With fp16 loss scaling the gradients are unscaled
        first, and non-finite gradients are left to the scaler, which skips
        that step and lowers its scale (an overflow of the scaled gradients is
        expected now and then); a non-finite loss still stops training.
        """
        if grad_scaler is not None:
            # Logs first: a non-finite loss raises before the scaler holds this step's state.
            self.record_logs(logs, prefix="train")
            grad_scaler.unscale_(optimizer)
        else:
            self.record_logs(logs, prefix="train", gradients=self._gradients(parameters))

    def apply_gradients(self, optimizer, parameters, grad_scaler, clip=None):
        """Clip the gradients to the total L2 norm ``clip`` (if any), then step ``optimizer``."""
        if clip is not None:
            # The multi-tensor kernels exist on the CPU and CUDA, not on MPS.
            foreach = True if parameters[0].device.type in ("cpu", "cuda") else None
            torch.nn.utils.clip_grad_norm_(parameters, clip, foreach=foreach)
        if grad_scaler is None:
            optimizer.step()
        else:
            grad_scaler.step(optimizer)
            grad_scaler.update()

    def on_epoch_begin(self, net, **kwargs):
        super().on_epoch_begin(net, **kwargs)
        self._diagnose = {"train", "valid"}

    def get_loss(self, y_pred, y_true=None, X=None, training=False):
        prefix = "train" if training else "valid"
        diagnose = prefix in self._diagnose
        self._diagnose.discard(prefix)
        loss, logs = self.criterion_(
            *y_pred,
            step=self.n_steps_,
            diagnose=diagnose,
            generator=self._noise_generator,
            supervision=self._supervision(y_true),
            # A validation batch is a sample of the validation set, not of the training set.
            dataset_size=None if training else getattr(self, "_n_valid", None),
        )
        if training:
            # Recorded after backward, with the gradient check, in one device sync.
            self._pending_logs = logs
        else:
            self.record_logs(logs, prefix="valid")
        return loss

    def get_split_datasets(self, X, y=None, **fit_params):
        # skorch's, recording the validation set's size for the TC estimators (get_loss).
        dataset_train, dataset_valid = super().get_split_datasets(X, y, **fit_params)
        self._n_valid = None if dataset_valid is None else len(dataset_valid)
        return dataset_train, dataset_valid

    def _supervision(self, labelled):
        """``(means, targets)`` of a batch's labelled rows, or ``None`` when it has none."""
        if labelled is None:
            return None
        rows, targets = labelled
        means, _ = self.encode_rows(self.to_device(rows))
        return means, to_tensor(targets, device=self.device)

    def train_step(self, batch, **fit_params):
        step = self.vae_step(batch, **fit_params)
        self.n_steps_ += 1
        return step

    def vae_step(self, batch, **fit_params):
        """Update the encoder and decoder on one batch; returns skorch's step dict.

        Backward, then the objective's terms and the sum of all gradients
        are copied to the host together (one device sync, as the loss alone
        would cost): a non-finite loss or gradient raises
        :class:`~sklearn_betavae.exceptions.TrainingDivergedError` before the
        optimizer steps. The parameters (and buffers) that gave the finite loss
        are copied before the update (:meth:`restore_last_finite` brings them
        back: the update itself can make the next loss non-finite).
        With ``clip_grad_norm``, the gradients are then clipped to that total
        L2 norm (:meth:`apply_gradients`). Only ``optimizer_`` steps (skorch's
        own ``train_step`` would step every registered optimizer).
        """
        self.optimizer_.zero_grad()
        step = self.train_step_single(batch, **fit_params)
        logs, self._pending_logs = self._pending_logs, None
        parameters = list(self.module_.parameters())
        self.check_gradients(self.optimizer_, parameters, logs, self.grad_scaler_)
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.module_.named_parameters()),
            batch=batch,
            training=True,
        )
        self._keep_last_finite()
        self.apply_gradients(self.optimizer_, parameters, self.grad_scaler_, self.clip_grad_norm)
        return step

    def _keep_last_finite(self):
        """Copy the module's parameters and floating-point buffers into ``_last_finite``,
        ``(tensors, copies)``, allocated at the first step of each :meth:`fit_loop`
        (pickles leave it out)."""
        if getattr(self, "_last_finite", None) is None:
            tensors = [p.detach() for p in self.module_.parameters()]
            tensors += [b for b in self.module_.buffers() if b.is_floating_point()]
            self._last_finite = (tensors, [t.clone() for t in tensors])
        else:
            torch._foreach_copy_(self._last_finite[1], self._last_finite[0])

    def restore_last_finite(self):
        """Give the module the state that gave the last finite training loss.

        After :class:`~sklearn_betavae.exceptions.TrainingDivergedError`: the
        last update, from finite gradients, may itself have made the loss
        non-finite. The optimizer's state is left as it is.
        """
        if getattr(self, "_last_finite", None) is not None:
            tensors, copies = self._last_finite
            with torch.no_grad():
                torch._foreach_copy_(tensors, copies)

    @staticmethod
    def _gradients(parameters):
        return [p.grad for p in parameters if p.grad is not None]

    def record_logs(self, logs, prefix, gradients=None):
        """Record an objective's logs in the current batch row (one device sync).

        Raises :class:`~sklearn_betavae.exceptions.TrainingDivergedError` when
        the loss (the first log) or, if given, any of ``gradients`` is not
        finite, before an optimizer could write non-finite values into the
        parameters.
        """
        tensors = [v.detach().reshape(-1).float() for v in logs.values() if torch.is_tensor(v)]
        if gradients:
            tensors.append(_finiteness_probe(gradients).reshape(1).float())
        flat = torch.cat(tensors).tolist()
        batch_row = self.history[-1]["batches"][-1]  # one lookup, not one per key
        position = 0
        for key, value in logs.items():
            if torch.is_tensor(value):
                size = value.numel()
                vector = key in self.criterion_.vector_logs
                value = flat[position : position + size] if vector else flat[position]
                position += size
            if key == "beta":
                if prefix == "train":
                    batch_row["beta"] = value
            else:
                batch_row[f"{prefix}_{key}"] = value
        where = f"at epoch {len(self.history)}, after {self.n_steps_} optimisation steps"
        if not math.isfinite(flat[0]):
            terms = [key for key in logs if key != "loss" and torch.is_tensor(logs[key])
                     and not np.isfinite(batch_row.get(f"{prefix}_{key}", 0.0)).all()]
            what = f"The {prefix} loss became {flat[0]}" + (
                f" (non-finite terms: {', '.join(terms)})" if terms else "")
        elif gradients and not math.isfinite(flat[-1]):
            what = f"The {prefix} loss was finite ({flat[0]:.6g}) but its gradients were not"
        else:
            return
        if self.n_steps_ == 0:
            raise TrainingDivergedError(
                f"{what} at the first step of training, before any update: X is probably "
                "not scaled to a range of about 1."
            )
        raise TrainingDivergedError(
            f"{what} {where}: training diverged. Lower learning_rate, standardise X "
            "(e.g. with StandardScaler) or lower the regularisation weight."
        )

    def on_epoch_end(self, net, **kwargs):
        row = self.history[-1]
        batches = row["batches"]
        for prefix in ("train", "valid"):
            size = f"{prefix}_batch_size"
            skip = {f"{prefix}_loss", size}
            names = {k for b in batches for k in b if k.startswith(f"{prefix}_") and k not in skip}
            for name in sorted(names):
                rows = [b for b in batches if name in b and size in b]
                values = np.asarray([b[name] for b in rows], dtype=float)
                mean = np.average(values, axis=0, weights=[b[size] for b in rows])
                self.history.record(name, mean.tolist())
        betas = [b["beta"] for b in batches if "beta" in b]
        if betas:
            self.history.record("beta", betas[-1])

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop; an interrupt or a divergence leaves a consistent history.

        The row of an epoch that did not finish is dropped (its steps stay in
        the weights and in ``n_steps_``), so that ``history_`` holds completed
        epochs only. After a ``KeyboardInterrupt`` ``interrupted_`` is set,
        unless the interrupt was skorch's ``EarlyStopping`` ending training as
        planned; after :class:`~sklearn_betavae.exceptions.TrainingDivergedError`
        the module gets back the state of its last finite step.
        """
        self.interrupted_ = False
        self.planned_epochs_ = epochs
        self._last_finite = None  # the module may have moved since the last fit
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except Exception as exc:
            self.reset_grad_scalers()
            for _, callback in self.callbacks_:
                if isinstance(callback, ProgressBar):
                    callback.close()
            if isinstance(exc, TrainingDivergedError):
                self.restore_last_finite()
                self._drop_unfinished_epoch()
            raise
        except KeyboardInterrupt:
            self.reset_grad_scalers()
            self.interrupted_ = not any(
                isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience
                for _, cb in self.callbacks_
            )
            self._drop_unfinished_epoch()
            return self

    def _drop_unfinished_epoch(self):
        self._pending_logs = None
        if len(self.history) and "train_loss" not in self.history[-1]:
            self.history.pop()

    def infer_rows(self, X, fn, *, row_seed=None):
        """Run ``fn`` on batches of rows of X, each row's result independent of the others.

        Every call of ``fn`` sees exactly ``batch_size`` float32 rows on the
        device, and each row of X sits at a position of its batch chosen by a
        hash of its own values (:func:`~sklearn_betavae._random.row_keys`);
        positions no row takes are zero rows, whose outputs are dropped. CPU
        kernels round an element's result according to the shapes of the
        operation and the element's position in it (blocking of matrix
        products, a vectorised body and a scalar tail in elementwise loops),
        never according to the other rows' values. With the shape fixed and the
        position a function of the row, a row's result is bitwise the same
        whatever else is in X and in whatever order. Rows whose positions
        collide go to different batches, so there are a few more batches than
        ``n_samples / batch_size`` for small X (1.5 times for the 1,797
        digits in batches of 64, 1.06 times for 20,000 sprites). Copies of a
        row, which would each need a batch of their own, are computed once
        (:func:`_distinct_rows`): their results are equal anyway.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated rows, in any dtype the data path takes (memmaps are
            read batch by batch).
        fn : callable
            ``fn(x)``, or ``fn(x, keys)`` with ``row_seed``; returns a tensor
            or a tuple of tensors with one row per row of ``x``. Runs under
            ``torch.inference_mode`` with the module in eval mode.
        row_seed : int or None, default=None
            When given, ``keys`` holds one uint64 key per row of ``x``, a hash
            of the row's float32 values and ``row_seed`` (zero for the padding
            rows), for row-keyed noise.

        Returns
        -------
        out : ndarray or tuple of ndarray
            ``fn``'s outputs for the rows of X, in the order of X, on the CPU.
        """
        self._set_training(False)
        n_samples, batch_size = len(X), self.batch_size
        data = ArrayDataset(X)
        block = _hash_block(X)
        content = np.concatenate([
            row_keys(data.take(slice(start, start + block)).numpy(), _POSITION_SEED)
            for start in range(0, n_samples, block)
        ])
        positions = (content % np.uint64(batch_size)).astype(np.intp)
        computed, source = _distinct_rows(X, content)
        if computed is not None:
            positions = positions[computed]
        outputs, single = None, False
        # One float32 host buffer, refilled per batch: padding rows stay zero.
        buffer = np.zeros((batch_size, *X.shape[1:]), dtype=np.float32)
        with torch.inference_mode():
            for batch_rows, slots in _batches_by_position(positions, batch_size):
                rows = batch_rows if computed is None else computed[batch_rows]
                raw = np.asarray(X[rows])
                buffer[slots] = raw
                batch = torch.from_numpy(buffer).to(self.device, copy=True)
                buffer[slots] = 0
                args = ()
                if row_seed is not None:
                    keys = np.zeros(batch_size, dtype=np.uint64)
                    keys[slots] = row_keys(raw, row_seed)
                    args = (keys,)
                out = fn(batch, *args)
                single = not isinstance(out, tuple)
                slots_t = torch.from_numpy(slots)  # indexes each output where it lies
                parts = [t[slots_t.to(t.device)].cpu().numpy() for t in ((out,) if single else out)]
                if outputs is None:
                    outputs = [np.empty((len(positions), *p.shape[1:]), dtype=p.dtype)
                               for p in parts]
                for result, part in zip(outputs, parts):
                    result[batch_rows] = part
        if source is not None:  # copies of computed rows take their results
            outputs = [result[source] for result in outputs]
        return outputs[0] if single else tuple(outputs)

    def _grad_scaler_names(self):
        """Attributes holding an fp16 gradient scaler (the VAE's, FactorVAE's discriminator's)."""
        return [name for name, value in vars(self).items()
                if isinstance(value, torch.amp.GradScaler)]

    def move_to(self, device):
        """Move the fitted modules, their optimizers' state and the scalers to ``device``."""
        self.device = device
        for name in self._modules:
            getattr(self, name + "_").to(device)
        for name in self._optimizers:
            optimizer = getattr(self, name + "_")
            optimizer.load_state_dict(optimizer.state_dict())  # moves the state with the weights
        self.reset_grad_scalers()

    def reset_grad_scalers(self):
        """Make every gradient scaler usable again after a step that did not finish."""
        for name in self._grad_scaler_names():
            setattr(self, name, _fresh_scaler(getattr(self, name), self.device))

    def __getstate__(self):
        state = super().__getstate__()
        # Generators may live on a GPU; they are re-seeded at every fit.
        state.pop("_shuffle_generator", None)
        state.pop("_noise_generator", None)
        state.pop("_pending_logs", None)
        state.pop("_last_finite", None)  # a copy of the weights, for a fit in progress
        # Modules given as instances (``module``, FactorVAE's ``discriminator``)
        # became ``<name>_``. skorch saves ``<name>_`` through its device-aware
        # (map_location) path but would pickle the instance a second time,
        # plainly: twice the weights, and CUDA tensors that cannot load on a
        # CPU-only machine.
        shared = [name for name in self._modules if state.get(name) is self.__dict__.get(name + "_")]
        for name in shared:
            state[name] = None
        state["_modules_given_as_instances"] = shared
        return state

    def __setstate__(self, state):
        shared = state.pop("_modules_given_as_instances", ())
        # skorch maps a CUDA model to the CPU where there is no CUDA, but not "cuda:N"
        # beyond this machine's GPUs, nor MPS off a Mac: its tensors load where
        # loading_device says.
        if state.get("device") is not None:
            state["device"] = loading_device(state["device"], stacklevel=3)
        # Pickles of earlier versions hold "fresh" for a scaler: a new one.
        fresh_scalers = [k for k, v in state.items() if isinstance(v, str) and v == "fresh"]
        super().__setstate__(state)
        for key in fresh_scalers:
            setattr(self, key, torch.amp.GradScaler(torch.device(self.device).type))
        precision = portable_precision(self.precision, self.device)  # skorch may have moved it
        if precision != self.precision:
            self.precision = precision
            for name in self._grad_scaler_names():
                setattr(self, name, None)
        for name in shared:
            setattr(self, name, getattr(self, name + "_"))
