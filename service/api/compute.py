"""One level of parallelism inside the server.

Requests run concurrently on the server's worker threads; each one computes single-threaded. Left alone,
every single-item request would wake OpenMP/BLAS pools sized to all cores (scikit-learn's kNN distance
reduction, tree ensembles, NumPy BLAS): on a 2-core machine that made a one-row predict about 3x slower
(spin-waiting threads fighting the other requests). OpenMP limits are per calling thread, so they are
applied around each computation, in the thread that runs it; the controller is built once (after the
models are loaded, so it sees every loaded runtime) and entering it costs about 0.1 ms.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Any


class SingleThreadedCompute:
    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()
        torch = sys.modules.get("torch")
        if torch is not None:  # intra-op pool is process-wide; only set it if a torch model is loaded
            torch.set_num_threads(1)

    def __call__(self) -> AbstractContextManager[Any]:
        limit: AbstractContextManager[Any] = self._controller.limit(limits=1)
        return limit
