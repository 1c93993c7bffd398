"""Fits in the workers of a parallel engine: thread limits and failures.

- Threads. joblib's loky workers already limit torch's threads (to
  ``cpu_count // n_jobs``), and dask's nannies start workers with
  ``OMP_NUM_THREADS=1``. A dask worker started without a nanny (``dask worker
  --no-nanny``, dask-mpi, ``LocalCluster(processes=False)``) or with that
  variable overridden would let torch start one thread per core in every task
  it runs: :func:`limit_torch_threads_to_dask_worker` caps them at the worker's.
- Failures. joblib's dask backend waits forever for a task whose worker died;
  :func:`register_dask_backend` makes ``joblib.parallel_backend("dask")`` raise
  the error instead.
"""

import concurrent.futures
import functools
import sys
import threading

import joblib
import torch

from .exceptions import ClusterCancelledTaskError


def limit_torch_threads_to_dask_worker():
    """Cap torch's intra-op threads at the ``nthreads`` of the dask worker running this task.

    Does nothing outside a dask task, and never imports ``distributed``: a
    process running a dask worker has imported it already. torch's thread
    setting holds for the calling thread, which runs the whole fit.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return
    try:
        worker = distributed.get_worker()
    except ValueError:  # not inside a dask task
        return
    nthreads = worker.state.nthreads
    if torch.get_num_threads() > nthreads:
        torch.set_num_threads(nthreads)


class _ClusterFailure:
    """A task the cluster failed (e.g. ``distributed.KilledWorker``), passed to joblib."""

    def __init__(self, error):
        self.error = error


# Seconds a cancelled task waits before its cancellation is reported, so that the failure
# that caused it (a worker that died holding the task's data) is reported first.
_CANCELLATION_GRACE = 2.0


@functools.cache
def _dask_backend_class():
    """joblib's dask backend, reporting tasks that the cluster fails to ``Parallel``.

    joblib's ``DaskDistributedBackend`` passes only finished tasks to
    ``Parallel``: a task that fails on the cluster side, such as one whose
    worker died (``distributed.KilledWorker``), is never reported, and
    ``Parallel`` (so ``GridSearchCV``) waits forever. This subclass reports
    it, so that ``Parallel`` raises it.

    A worker that dies can also take with it data that other tasks need (the
    arguments joblib scattered to it): the scheduler then cancels them
    (``FutureCancelledError``, "lost dependencies" or "already forgotten"),
    at about the time the dying task fails. ``Parallel`` raises the error of
    the first task, in submission order, that has one, so a cancellation could
    hide its cause. Cancellations are therefore reported after a grace period,
    as the first cluster failure of the call when there was one (the
    ``KilledWorker``), as a :class:`~sklearn_betavae.exceptions.ClusterCancelledTaskError`
    otherwise.
    """
    from joblib._dask import DaskDistributedBackend

    class DaskBackend(DaskDistributedBackend):
        def start_call(self):
            super().start_call()
            self._first_failure = None

        def submit(self, func, callback=None):
            relay = None
            if callback is not None:

                def relay(out):
                    # joblib passes a cancelled task's FutureCancelledError as its result.
                    if isinstance(out, concurrent.futures.CancelledError):
                        self._report_cancellation_later(out, callback)
                    else:
                        callback(out)

            future = super().submit(func, relay)

            def report_failure(done):
                if callback is None or done.cancelled() or done.exception() is None:
                    return
                error = done.exception()
                if isinstance(error, concurrent.futures.CancelledError):
                    self._report_cancellation_later(error, callback)
                    return
                if self._first_failure is None:
                    self._first_failure = error
                callback(_ClusterFailure(error))

            future.add_done_callback(report_failure)
            return future

        def _report_cancellation_later(self, error, callback):
            def report():
                cause = self._first_failure
                if cause is None:
                    cause = ClusterCancelledTaskError(
                        f"The dask cluster cancelled a task of this call ({error}), which "
                        "happens when a worker dies holding data the task needs: see the "
                        "workers' logs."
                    )
                    cause.__cause__ = error
                callback(_ClusterFailure(cause))

            timer = threading.Timer(_CANCELLATION_GRACE, report)
            timer.daemon = True
            timer.start()

        def retrieve_result_callback(self, out):
            if isinstance(out, _ClusterFailure):
                raise out.error
            return super().retrieve_result_callback(out)

    return DaskBackend


def _make_dask_backend(**backend_params):
    """Factory of joblib's ``"dask"`` backend (imports joblib's dask module when used)."""
    return _dask_backend_class()(**backend_params)


def register_dask_backend():
    """Make ``joblib.parallel_backend("dask")`` raise when the cluster fails a task.

    Registers the subclass of joblib's own dask backend above under the same
    name; it behaves identically except that a task failed by the cluster
    (a worker that died running it) makes ``Parallel`` raise instead of hang.
    Cheap: nothing is imported until the backend is used.
    """
    joblib.register_parallel_backend("dask", _make_dask_backend)
