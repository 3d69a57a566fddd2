"""Where the server computes: off the event loop, one level of parallelism.

Model work (predict, rank) never runs on the event loop: ``await compute.run(fn)`` hands it to this
process's compute thread, so ``/health`` and the parsing/serialising of other requests go on while a
prediction runs. One compute thread per server process: the work is GIL-bound Python + NumPy, so a second
thread in the same process would only contend for the GIL; the cores are used by running one server
worker process per core (``nascreen serve --workers``). Requests queue for the compute thread in arrival
order.

Each computation runs single-threaded. Left alone, every single-item request would wake thread pools sized
to all cores: OpenMP/BLAS (scikit-learn's kNN distance reduction, NumPy) and joblib (a forest trained with
``n_jobs=2`` dispatches its trees to two threads). On a 2-core machine shared with other work that made a
one-row predict several times slower (threads spin-waiting and fighting the other requests for the same
cores). The limits are per calling thread (OpenMP ICVs and joblib's backend are thread-local), so they are
applied around each computation, in the thread that runs it: OpenMP/BLAS to one thread and joblib to its
sequential backend, which runs `n_jobs=k` work in the calling thread. Predictions are unchanged (forests
average the same trees). The controller is built once (after the models are loaded, so it sees every
loaded runtime); entering the limits costs about 0.1 ms.

Small predicts have a lane of their own (``run(fn, fast=True)``: a second thread): behind one queue, a
one-item predict (~5 ms) waited for every dopant ranking or large batch queued before it (100-500 ms
each), which made its p99 under mixed load the ranking's time. On its own thread it still shares the
GIL with a running ranking, but the interpreter hands the GIL over every ``GIL_SWITCH_INTERVAL_S``, so it
finishes in a few of its own compute times instead of after the queue. Both lanes compute
single-threaded; at most two computations run in a process.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

# How often the interpreter offers the GIL to another thread (CPython's default is 5 ms): while the compute
# thread runs, the event loop thread waits up to this long for it, on every request it serves meanwhile.
GIL_SWITCH_INTERVAL_S = 0.001


class SingleThreadedCompute:
    def __init__(self, threads: int = 1) -> None:
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()
        torch = sys.modules.get("torch")
        if torch is not None:  # intra-op pool is process-wide; only set it if a torch model is loaded
            torch.set_num_threads(1)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nascreen-compute")
        self._fast = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nascreen-compute-fast")
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        from joblib import parallel_config

        with self._controller.limit(limits=1), parallel_config(backend="sequential"):
            yield

    def _limited(self, fn: Callable[[], T]) -> T:
        with self():
            return fn()

    async def run(self, fn: Callable[[], T], *, fast: bool = False) -> T:
        """``fn()`` on the compute thread (``fast``: the small requests' own thread, see the module
        docstring), single-threaded; the event loop serves other requests meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._fast if fast else self._pool, self._limited, fn)

    def shutdown(self) -> None:
        self._fast.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
