"""Exceptions and warnings of the package, for users to catch or filter.

Like :mod:`sklearn.exceptions`: a leaf module that imports nothing from the
rest of the package.
"""

__all__ = [
    "ClusterCancelledTaskError",
    "PosteriorCollapseWarning",
    "TrainingDivergedError",
    "TrainingInterruptedWarning",
]


class TrainingDivergedError(ValueError):
    """Training stopped because its loss or its gradients stopped being finite.

    Raised by ``fit`` and ``partial_fit`` before the optimizer could write a
    non-finite value into the parameters: the estimator keeps the model of the
    last finite step (the weights that gave the last finite loss), usable for
    ``transform`` and ``score``, with the completed epochs in ``history_``. A
    subclass of :class:`ValueError`.
    """


class TrainingInterruptedWarning(UserWarning):
    """``fit`` was interrupted (Ctrl-C or a ``KeyboardInterrupt`` from a callback).

    The estimator keeps the weights of the last optimisation step; ``history_``
    and ``n_iter_`` hold the completed epochs only.
    """


class PosteriorCollapseWarning(UserWarning):
    """After ``fit``, most latent dimensions carry (almost) no information.

    Their posterior equals the prior for every sample (a KL near 0 nats):
    the code ignores the data. Warm-up (``anneal_steps``), free bits or a
    lower regularisation weight usually help.
    """


class ClusterCancelledTaskError(RuntimeError):
    """A dask cluster cancelled a task of a joblib call that no other failure explains.

    Raised under ``joblib.parallel_backend("dask")`` (for example by
    ``GridSearchCV``) when the scheduler cancels a task, as it does when a
    worker dies holding data the task needs, and no task of the call failed
    first. When one did (typically ``distributed.KilledWorker`` for the task
    that killed its worker), that error is raised instead. The cancellation
    is the ``__cause__``.
    """
