"""Row-keyed random numbers (``_random.py``)."""

import numpy as np
from numpy.testing import assert_array_equal
from scipy import stats

from sklearn_betavae._random import keyed_standard_normal, row_keys


def test_row_keys_depend_on_the_row_and_the_seed_only():
    # A row's key is the same in any company, order or float dtype; it changes with the seed
    # and with any value of the row; -0.0 and 0.0 are the same value.
    X = np.random.RandomState(0).rand(500, 7)
    keys = row_keys(X, 3)
    assert len(set(keys.tolist())) == 500
    assert_array_equal(row_keys(X[::-1], 3)[::-1], keys)
    assert_array_equal(row_keys(X[10:20], 3), keys[10:20])
    assert_array_equal(row_keys(X.astype(np.float32), 3), keys)
    assert np.all(row_keys(X, 4) != keys)
    Y = X.copy()
    Y[:, 6] = np.nextafter(Y[:, 6].astype(np.float32), np.float32(2))
    assert np.all(row_keys(Y, 3) != keys)
    assert_array_equal(row_keys(np.array([[-0.0, 1.0]]), 0), row_keys(np.array([[0.0, 1.0]]), 0))


def test_keyed_draws_are_standard_normal_and_independent():
    # The draws of many keys pass a normality test, with no correlation between positions
    # or between neighbouring keys, and are a pure function of the key.
    keys = row_keys(np.arange(4000, dtype=float)[:, None], 0)
    draws = keyed_standard_normal(keys, 16)
    assert stats.kstest(draws.ravel(), "norm").pvalue > 1e-3
    assert abs(draws.mean()) < 0.02 and abs(draws.std() - 1) < 0.02
    correlation = np.corrcoef(draws.T)
    assert np.abs(correlation - np.eye(16)).max() < 0.07
    assert abs(np.corrcoef(draws[:-1, 0], draws[1:, 0])[0, 1]) < 0.07
    assert_array_equal(keyed_standard_normal(keys[5:6], 16), draws[5:6])
