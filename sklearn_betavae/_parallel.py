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

import functools
import sys

import joblib
import torch


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


@functools.cache
def _dask_backend_class():
    """joblib's dask backend, reporting tasks that the cluster fails to ``Parallel``.

    joblib's ``DaskDistributedBackend`` passes only finished tasks to
    ``Parallel``: a task that fails on the cluster side, such as one whose
    worker died (``distributed.KilledWorker``), is never reported, and
    ``Parallel`` (so ``GridSearchCV``) waits forever. This subclass reports
    it, so that ``Parallel`` raises it.
    """
    from joblib._dask import DaskDistributedBackend

    class DaskBackend(DaskDistributedBackend):
        def submit(self, func, callback=None):
            future = super().submit(func, callback)

            def report_failure(done):
                if callback is not None and not done.cancelled() and done.exception():
                    callback(_ClusterFailure(done.exception()))

            future.add_done_callback(report_failure)
            return future

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
