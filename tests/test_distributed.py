"""Sweeps on a real dask.distributed LocalCluster through joblib's "dask" backend.

One cluster of 2 worker processes with 1 thread each, on the loopback interface,
serves the whole module. Its nannies start the workers with OMP_NUM_THREADS=4, as
a worker started without a nanny or with that variable overridden would have it:
torch then defaults to 4 threads, and the package must bring them down to the
worker's 1. Every distributed call runs under a timeout, so a hang fails fast.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from joblib import parallel_backend
from numpy.testing import assert_array_equal
from skorch.callbacks import Callback
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_betavae import BetaVAE
from sklearn_betavae.exceptions import ClusterCancelledTaskError
from sklearn_betavae.metrics import elbo_scorer
from sklearn_betavae.model_selection import UDRSelector

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

TIMEOUT = 120  # seconds for any one distributed call: generous for a loaded machine


def _vae(**params):
    defaults = dict(n_components=2, hidden_layer_sizes=(8,), max_epochs=2, batch_size=16,
                    random_state=0)
    return BetaVAE(**{**defaults, **params})


def _torch_threads(estimator, X, y=None):
    """Scorer reporting how many threads torch uses in the process that fitted the model."""
    return torch.get_num_threads()


def _pid(estimator, X, y=None):
    """Scorer reporting the process that fitted the model."""
    return os.getpid()


class _ExitInWorker(Callback):
    """Kills the process at the start of training, as a crashing worker would (never here)."""

    def on_train_begin(self, net, **kwargs):
        distributed.get_worker()  # raises ValueError outside a dask task: pytest lives on
        os._exit(1)


def _run(function, timeout=TIMEOUT):
    """``function()`` in a daemon thread; a hang fails the test instead of the suite."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"no result after {timeout} s: the call hangs"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _on_dask(function):
    """``function()`` with the dask joblib backend (set in the thread that runs it)."""

    def run():
        with parallel_backend("dask", wait_for_workers_timeout=TIMEOUT):
            return function()

    return _run(run)


@pytest.fixture(scope="module")
def client():
    config = {
        "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 4},
        # A task whose worker dies is not retried: the error surfaces at the first death.
        "distributed.scheduler.allowed-failures": 0,
    }
    with dask.config.set(config):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=50,
        )
        client = distributed.Client(cluster)
    yield client
    client.close(timeout=TIMEOUT)
    cluster.close(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:96] / 16


def test_grid_search_on_dask_equals_sequential(client, X):
    # Same cv_results_ scores and refitted model as a sequential search, computed on workers.
    def search():
        scoring = {"elbo": elbo_scorer, "pid": _pid}
        return GridSearchCV(_vae(), {"beta": [0.5, 2.0]}, cv=2, scoring=scoring, refit="elbo")

    sequential = search().fit(X)
    on_dask = _on_dask(lambda: search().fit(X))
    for key in ("split0_test_elbo", "split1_test_elbo", "mean_test_elbo"):
        assert_array_equal(on_dask.cv_results_[key], sequential.cv_results_[key])
    assert_array_equal(on_dask.best_estimator_.transform(X), sequential.best_estimator_.transform(X))
    worker_pids = set(client.run(os.getpid).values())
    fit_pids = {int(p) for k in ("split0_test_pid", "split1_test_pid")
                for p in on_dask.cv_results_[k]}
    assert fit_pids <= worker_pids


def test_torch_threads_follow_the_worker(client, X):
    # Workers start with OMP_NUM_THREADS=4 (torch's default there); a fit in a 1-thread
    # worker uses 1 torch thread.
    if set(client.run(os.environ.get, "OMP_NUM_THREADS").values()) != {"4"}:
        pytest.skip("OMP_NUM_THREADS of this process overrides the workers' setting")
    search = _on_dask(
        lambda: GridSearchCV(_vae(), {"beta": [0.5, 2.0]}, cv=2, scoring=_torch_threads,
                             refit=False).fit(X)
    )
    nthreads = set(client.nthreads().values())
    assert nthreads == {1}
    assert_array_equal(search.cv_results_["split0_test_score"], 1)
    assert_array_equal(search.cv_results_["split1_test_score"], 1)


def test_udr_selector_on_dask_equals_sequential(client, X):
    # The members are fitted on the workers and give the same scores and transform.
    selector = UDRSelector(_vae(), n_seeds=2, random_state=0)
    sequential = selector.fit(X)
    sequential_scores, sequential_Z = sequential.udr_scores_, sequential.transform(X)
    with distributed.get_task_stream(client) as stream:
        on_dask = _on_dask(lambda: UDRSelector(_vae(), n_seeds=2, random_state=0).fit(X))
    assert len(stream.data) >= 1
    assert_array_equal(on_dask.udr_scores_, sequential_scores)
    assert_array_equal(on_dask.transform(X), sequential_Z)


def test_grid_search_over_udr_selector_on_dask(client, X):
    # The sweep, nested: each setting's seeds are fitted as tasks of their own.
    def search():
        return GridSearchCV(UDRSelector(_vae(), n_seeds=2, random_state=0),
                            {"estimator__beta": [0.5, 2.0]}, cv=2)

    sequential = search().fit(X)
    with distributed.get_task_stream(client) as stream:
        on_dask = _on_dask(lambda: search().fit(X))
    assert_array_equal(on_dask.cv_results_["mean_test_score"],
                       sequential.cv_results_["mean_test_score"])
    assert_array_equal(on_dask.transform(X), sequential.transform(X))
    # 4 (setting, fold) tasks, each fitting its 2 seeds in nested tasks.
    assert sum("_fit_member" in task["key"] for task in stream.data) >= 8


def test_dying_worker_raises_instead_of_hanging(client, X):
    # A fit that kills its worker process makes the sweep raise KilledWorker, within the timeout.
    grid = {"callbacks": [None, [_ExitInWorker()]]}
    with pytest.raises(distributed.KilledWorker, match="died"):
        _on_dask(lambda: GridSearchCV(_vae(), grid, cv=2).fit(X))
    # The nannies restart the dead workers; the cluster is usable again.
    _run(lambda: client.wait_for_workers(2, timeout=TIMEOUT))
    assert _run(lambda: client.submit(np.add, 1, 2).result(timeout=TIMEOUT)) == 3


def test_package_does_not_import_distributed():
    # Importing the package and fitting leave distributed unimported (it is optional, and slow).
    code = (
        "import sys, numpy as np; from sklearn_betavae import BetaVAE; "
        "BetaVAE(n_components=2, hidden_layer_sizes=(4,), max_epochs=1).fit(np.random.rand(8, 3)); "
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)


@pytest.mark.parametrize("first_failure", [None, "killed"])
def test_cancelled_task_reports_the_failure_that_caused_it(monkeypatch, first_failure):
    # A worker that dies holding scattered data makes the scheduler cancel the tasks that
    # needed it, about when the dying task fails. joblib raises the error of the first task
    # in submission order, so the cancellation is reported late and as its cause.
    from sklearn_betavae import _parallel

    monkeypatch.setattr(_parallel, "_CANCELLATION_GRACE", 0.05)
    backend = object.__new__(_parallel._dask_backend_class())
    killed = distributed.KilledWorker("task", "worker", 0)
    backend._first_failure = None
    reported = threading.Event()
    received = []

    def callback(out):
        received.append(out)
        reported.set()

    cancellation = distributed.client.FutureCancelledError("key", reason="lost dependencies")
    backend._report_cancellation_later(cancellation, callback)
    if first_failure:
        backend._first_failure = killed  # the dying task's failure arrives within the grace
    assert not received  # nothing reported before the grace period
    assert reported.wait(TIMEOUT)
    with pytest.raises(Exception) as raised:
        backend.retrieve_result_callback(received[0])
    if first_failure:
        assert raised.value is killed
    else:
        assert isinstance(raised.value, ClusterCancelledTaskError)
        assert "lost dependencies" in str(raised.value) and "worker dies" in str(raised.value)
        assert raised.value.__cause__ is cancellation
