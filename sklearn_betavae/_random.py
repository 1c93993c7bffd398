"""Random numbers keyed by the content of a row (numpy only).

``score_samples`` estimates each row's ELBO with Monte Carlo noise. Noise drawn
from one stream per call would depend on the other rows and their order;
noise shared by every row makes the estimation errors of all rows add up
instead of averaging out. Keying the noise by a hash of the row's values (and
a seed) gives each row its own independent draws, the same wherever the row
sits and whatever else is in ``X``.
"""

import numpy as np
from scipy.special import ndtri

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x):
    """The splitmix64 finaliser (Steele et al. 2014): a bijective avalanche of uint64."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_keys(rows, seed):
    """One 64-bit key per row, from its float32 values and ``seed``.

    A multilinear hash of the values' bit patterns (random odd multipliers per
    column, drawn from ``seed``, arithmetic modulo 2**64), then mixed; ``-0.0``
    and ``0.0`` give the same key.

    Parameters
    ----------
    rows : ndarray of shape (n_rows, n_features)
        Any real dtype; hashed as float32, the precision the models compute in.
    seed : int
        Non-negative seed; different seeds give unrelated keys.

    Returns
    -------
    keys : ndarray of shape (n_rows,), dtype uint64
    """
    values = np.array(rows, dtype=np.float32, order="C")
    values += np.float32(0.0)  # -0.0 -> 0.0
    bits = values.view(np.uint32).astype(np.uint64)
    del values
    seed = np.array([seed], dtype=np.uint64)
    with np.errstate(over="ignore"):  # modulo 2**64 is the point
        columns = np.arange(1, bits.shape[1] + 1, dtype=np.uint64)
        multipliers = _mix64((seed + columns) * _GOLDEN) | np.uint64(1)
        bits *= multipliers
        hashed = bits.sum(axis=1, dtype=np.uint64)
        return _mix64(hashed ^ _mix64((seed + np.uint64(1)) * _GOLDEN))


def keyed_standard_normal(keys, n_values):
    """``n_values`` standard normal draws per key, a pure function of the key.

    Draw ``k`` of key ``h`` is the inverse normal CDF of a 53-bit uniform taken
    from ``mix64(h + (k + 1) * golden)``, the splitmix64 stream started at ``h``.

    Parameters
    ----------
    keys : ndarray of shape (n_rows,), dtype uint64
    n_values : int

    Returns
    -------
    normal : ndarray of shape (n_rows, n_values), float64
    """
    with np.errstate(over="ignore"):  # modulo 2**64 is the point
        counters = np.arange(1, n_values + 1, dtype=np.uint64) * _GOLDEN
        bits = _mix64(np.asarray(keys, dtype=np.uint64)[:, None] + counters[None, :])
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    return ndtri(uniform)
