"""The skorch net's data path and bookkeeping (``_net.py``)."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_betavae import BetaVAE, _net
from sklearn_betavae._net import ArrayDataset, BatchIterator, HoldoutSplit
from sklearn_betavae._random import row_keys


def test_batches_cover_every_row_once_in_native_dtype():
    # Shuffled batches partition the rows, keep uint8 (cast happens on the device), and
    # follow the generator's seed.
    X = np.arange(50, dtype=np.uint8).reshape(25, 2)
    gen = torch.Generator().manual_seed(0)
    batches = [b for b, _ in BatchIterator(ArrayDataset(X), 8, shuffle=True, generator=gen)]
    assert [len(b) for b in batches] == [8, 8, 8, 1]
    assert all(b.dtype == torch.uint8 for b in batches)
    rows = np.concatenate([b.numpy() for b in batches])
    assert_array_equal(np.sort(rows[:, 0]), X[:, 0])
    gen2 = torch.Generator().manual_seed(0)
    again = [b for b, _ in BatchIterator(ArrayDataset(X), 8, shuffle=True, generator=gen2)]
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_unshuffled_batches_keep_order_and_length():
    # Without shuffling the batches are consecutive slices; len() counts them.
    X = np.random.RandomState(0).rand(10, 3)
    it = BatchIterator(ArrayDataset(X), 4)
    assert len(it) == 3
    assert_array_equal(np.concatenate([b.numpy() for b, _ in it]), X)


def test_read_only_and_subset_rows():
    # Read-only arrays give writable tensors; a subset indexes into the shared array.
    X = np.arange(20.0).reshape(10, 2)
    X.setflags(write=False)
    ds = ArrayDataset(X).subset(np.array([1, 3, 5]))
    assert len(ds) == 3
    block = ds.take(slice(0, 2))
    assert_array_equal(block.numpy(), X[[1, 3]])
    block += 1  # must not raise or touch X
    assert X[1, 0] == 2.0
    assert_array_equal(ds[2].numpy(), X[5])


def test_holdout_split_is_disjoint_and_seeded():
    # The validation split holds out round(fraction * n) rows, disjoint from training.
    ds = ArrayDataset(np.arange(100).reshape(100, 1))
    train, valid = HoldoutSplit(0.2, seed=0)(ds)
    assert len(train) == 80 and len(valid) == 20
    assert not set(train.indices) & set(valid.indices)
    train2, _ = HoldoutSplit(0.2, seed=0)(ds)
    assert_array_equal(train.indices, train2.indices)
    with pytest.raises(ValueError, match="leaves no training sample"):
        HoldoutSplit(0.5, seed=0)(ArrayDataset(np.zeros((1, 1))))


def test_inference_batches_place_each_row_by_its_content(monkeypatch):
    # infer_rows runs fn on exactly batch_size float32 rows; each row sits at the position
    # its hash gives, never two rows at one position, padding rows are zeros; every distinct
    # row of X is computed once (a copy of a row takes its result) and comes back in the
    # order of X, whatever the hashing block size.
    X = (np.random.RandomState(0).rand(50, 4) + 0.1).astype(np.float32)  # no zero row
    X[7] = X[3]  # a copy: computed once
    vae = BetaVAE(n_components=2, batch_size=8, max_epochs=1, random_state=0).fit(X)
    seen = []
    out = vae.net_.infer_rows(X, lambda x: seen.append(x.clone()) or x[:, :1] * 2)
    positions = row_keys(X, _net._POSITION_SEED) % np.uint64(8)
    assert all(b.shape == (8, 4) and b.dtype == torch.float32 for b in seen)
    placed = {}
    for batch in seen:
        for position, row in enumerate(batch.numpy()):
            if any(positions[i] == position and np.array_equal(X[i], row) for i in range(50)):
                placed.setdefault(position, []).append(row)
            else:
                assert not row.any()  # a padding row
    assert sum(len(v) for v in placed.values()) == 49
    assert_array_equal(out, 2 * X[:, :1])
    assert len(seen) == np.bincount(np.delete(positions, 7).astype(int)).max()
    monkeypatch.setattr(_net, "_HASH_BLOCK_VALUES", 1)  # hash one row at a time
    assert_array_equal(vae.net_.infer_rows(X, lambda x: x[:, :1] * 2), out)


def test_inference_computes_copies_of_a_row_once_and_checks_they_are_copies(monkeypatch):
    # 1,000 copies of 4 rows used to take a batch per copy (copies share a position);
    # now 4 rows are computed, once each, and every copy gets its row's exact result.
    rng = np.random.RandomState(0)
    X = rng.rand(4, 6)
    vae = BetaVAE(n_components=2, batch_size=16, max_epochs=1, random_state=0).fit(X)
    copies = X[rng.randint(4, size=1000)]
    calls = []

    def fn(x):
        calls.append(int((x != 0).any(1).sum()))
        return vae.net_.encode_rows(x)[0]

    assert_array_equal(vae.net_.infer_rows(copies, fn), vae.transform(copies).astype(np.float32))
    assert sum(calls) == 4
    expected = vae.net_.infer_rows(X, lambda x: vae.net_.encode_rows(x)[0])
    assert_array_equal(vae.transform(copies), vae.transform(X)[[np.flatnonzero(
        (X == row).all(1))[0] for row in copies]])
    assert_array_equal(vae.net_.infer_rows(copies[:8], fn), expected[
        [np.flatnonzero((X == row).all(1))[0] for row in copies[:8]]])
    # Rows whose hashes collide but whose values differ are not copies: with every key
    # equal, every row is computed (each alone at position 0) and keeps its own result.
    monkeypatch.setattr(_net, "row_keys", lambda rows, seed: np.zeros(len(rows), np.uint64))
    calls.clear()
    assert_allclose(vae.net_.infer_rows(X, fn), expected, rtol=1e-5, atol=1e-6)
    assert sum(calls) == 4 and len(calls) == 4


def test_inference_passes_row_keys_and_tuples():
    # With row_seed, fn receives each row's key (zero for padding rows); tuple outputs come
    # back as a tuple of arrays in the order of X.
    X = np.random.RandomState(1).rand(11, 3)
    vae = BetaVAE(n_components=2, batch_size=4, max_epochs=1, random_state=0).fit(X)
    pairs = []

    def fn(x, keys):
        pairs.extend((tuple(row), key) for row, key in zip(x.numpy(), keys) if row.any())
        return x[:, 0], x.sum(1)

    first, total = vae.net_.infer_rows(X, fn, row_seed=5)
    expected = dict(zip(map(tuple, X.astype(np.float32)), row_keys(X, 5)))
    assert len(pairs) == 11 and all(expected[row] == key for row, key in pairs)
    assert_allclose(first, X[:, 0], rtol=1e-6)
    assert_allclose(total, X.sum(1), rtol=1e-6)
