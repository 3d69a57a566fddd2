"""One level of parallelism inside the server.

Requests run concurrently on the server's worker threads; each one computes single-threaded. Left alone,
every single-item request would wake thread pools sized to all cores: OpenMP/BLAS (scikit-learn's kNN
distance reduction, NumPy) and joblib (a forest trained with ``n_jobs=2`` dispatches its trees to two
threads). On a 2-core machine shared with other work that made a one-row predict several times slower
(threads spin-waiting and fighting the other requests for the same cores). The limits are per calling
thread (OpenMP ICVs and joblib's backend are thread-local), so they are applied around each computation,
in the thread that runs it: OpenMP/BLAS to one thread and joblib to its sequential backend, which runs
`n_jobs=k` work in the calling thread. Predictions are unchanged (forests average the same trees). The
controller is built once (after the models are loaded, so it sees every loaded runtime); entering the
limits costs about 0.1 ms.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class SingleThreadedCompute:
    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()
        torch = sys.modules.get("torch")
        if torch is not None:  # intra-op pool is process-wide; only set it if a torch model is loaded
            torch.set_num_threads(1)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        from joblib import parallel_config

        with self._controller.limit(limits=1), parallel_config(backend="sequential"):
            yield
