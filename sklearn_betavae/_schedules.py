"""Annealing schedules (pure Python, no torch)."""


def linear_ramp(step, n_steps, final_value):
    """Linear warm-up ``min(1, step / n_steps) * final_value``.

    Used for KL annealing, ``beta(t) = min(1, t / T) * beta_max`` (Bowman et al.
    2016), and for the capacity schedule ``C(t)`` of Burgess et al. (2018).

    Parameters
    ----------
    step : int
        Number of optimisation steps taken so far (0 for the first step).
    n_steps : int
        Length ``T`` of the ramp. ``n_steps <= 0`` disables the ramp.
    final_value : float
        Value reached at ``step >= n_steps``.

    Returns
    -------
    value : float
        The scheduled value at ``step``.

    Examples
    --------
    >>> from sklearn_betavae._schedules import linear_ramp
    >>> [linear_ramp(t, 4, 2.0) for t in range(6)]
    [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    """
    if n_steps <= 0:
        return float(final_value)
    return min(1.0, step / n_steps) * float(final_value)
