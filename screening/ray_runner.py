"""The Ray executor: the only module of nascreen that imports Ray.

Design (one level of parallelism, memory-bounded, models loaded once per worker):
- one actor per CPU (``num_cpus=1`` each); the driver calls the scorer factory once (this is where the
  champion predictors are loaded), puts the scorer in the object store and hands it to every actor, which
  then scores chunk ranges (it regenerates its candidates from the spec it was given: the driver ships
  index ranges, never data); with ``share_scorer=False`` each actor calls the factory itself, once;
- inside workers everything runs single-threaded: OMP/MKL/OpenBLAS thread counts are set to 1 through the
  runtime environment and torch is set to one thread, so N actors use N cores instead of N x N threads;
- at most ``per_worker`` chunks are in flight per actor (``ray.wait`` one at a time), so the driver holds a
  bounded number of results, each written to the chunk store by the runner before the next is fetched;
- an actor process that dies is restarted by Ray (``max_restarts``) and its task retried
  (``max_task_retries``); an application error is retried here, up to ``max_attempts`` attempts with the
  reason logged each time, then reported as a failed chunk while the other chunks go on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import ray
from ray._common.network_utils import is_localhost, parse_address
from ray.exceptions import RayActorError, RayError, RayTaskError

from screening.chunks import (
    ChunkOutcome,
    ChunkRange,
    ChunkResult,
    ChunkScorer,
    ScorerFactory,
    merge_results,
    split_range,
)
from screening.process_guard import Guard, start_guard

logger = logging.getLogger(__name__)

LOCAL_NODE_IP = "127.0.0.1"
# Ray gives its raylet a fixed 30 s to register (ray/_private/node.py); on a machine busy with other work
# that was missed now and then, so an embedded start is tried again before giving up.
EMBEDDED_START_ATTEMPTS = 2
# Candidates per actor task: ~1 s of scoring on one core when every candidate is scored, far above Ray's
# few ms per task, and small enough that the last tasks of a screen finish close together.
DEFAULT_MAX_TASK_SIZE = 5_000
# Ray 2.60 on Linux turns a loopback host into the machine's routable address (services.
# resolve_ip_for_localhost: for a node IP and for a cluster address alike) unless multi-node clustering is
# switched off with this (Ray's own) switch: then an embedded session's node IP is 127.0.0.1 with GCS,
# raylet, workers and agents on 127.0.0.1 only, and a driver reaches a head node bound to 127.0.0.1
# (`ray start --head --node-ip-address 127.0.0.1`, docs/ray.md) instead of timing out on the rewritten one.
_LOOPBACK_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# Applied to every worker process Ray starts for this job (one level of parallelism).
WORKER_ENV_VARS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def _describe(exc: BaseException) -> str:
    """A one-line reason: the user's exception behind a RayTaskError, else the Ray error's first line."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


def is_loopback_address(address: str) -> bool:
    """Whether a Ray cluster address (``host:port``, or ``auto`` resolved the way ``ray.init`` resolves
    it: RAY_ADDRESS, then the latest local ``ray start``) names this machine's loopback interface."""
    if address == "auto":
        try:
            address = ray._private.services.get_ray_address_from_environment("auto", None)
        except ConnectionError:  # no local cluster: ray.init reports it
            return False
    parsed = parse_address(address)
    return parsed is not None and is_localhost(parsed[0])


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Ray's switch off for the duration of a ``ray.init``: environment (inherited by the processes it
    starts) and the constant the driver read when it imported ray; both restored afterwards."""
    saved = {k: os.environ.get(k) for k in _LOOPBACK_ONLY_ENV}
    os.environ.update(_LOOPBACK_ONLY_ENV)
    constants = ray._private.ray_constants
    saved_switch, constants.ENABLE_RAY_CLUSTER = constants.ENABLE_RAY_CLUSTER, False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_switch
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[dict[str, Any]]:
    """Connect to the Ray cluster at ``address``, or start an embedded local Ray (all local cores unless
    ``num_cpus``; node IP 127.0.0.1; no dashboard; usage stats off; Ray's own logging at WARNING).

    If Ray is already initialised in this process (a test fixture, a caller's session) it is reused and
    left running; a session started here is shut down on exit.
    """
    if ray.is_initialized():
        yield dict(ray.cluster_resources())
        return
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # read by ray.init below; never report usage
    common: dict[str, Any] = {
        "runtime_env": {"env_vars": dict(WORKER_ENV_VARS)},
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    if address:
        loopback = is_loopback_address(address)
        logger.info("connecting to the Ray cluster at %s%s", address, " (loopback)" if loopback else "")
        with _loopback_only() if loopback else nullcontext():
            ray.init(address=address, **common)
    else:
        for attempt in range(1, EMBEDDED_START_ATTEMPTS + 1):
            try:
                with _loopback_only():
                    ray.init(
                        address="local",
                        num_cpus=num_cpus,
                        include_dashboard=False,
                        _node_ip_address=LOCAL_NODE_IP,
                        **common,
                    )
                break
            except Exception as exc:  # Ray raises a bare Exception when its raylet misses its 30 s start
                if "timed out during startup" not in str(exc) or attempt == EMBEDDED_START_ATTEMPTS:
                    raise
                logger.warning("the embedded Ray did not start (%s); starting it again", exc)
                ray.shutdown()
    guard = None if address else _guard_embedded_session()
    try:
        yield dict(ray.cluster_resources())
    finally:
        ray.shutdown()
        if guard is not None:
            guard.stop()  # whatever of the session outlived the shutdown (normally nothing)


def _guard_embedded_session() -> Guard | None:
    """A guard process for the embedded session just started: if this process dies without shutting Ray
    down (kill -9), it stops the session's processes (the head processes Ray started here, and every
    agent and worker below them) instead of leaving them running. See ``screening.process_guard``."""
    node: Any = ray._private.worker._global_node
    if node is None:
        return None
    heads = [
        info.process.pid
        for infos in node.all_processes.values()
        for info in infos
        if info.process is not None
    ]
    if not heads:
        return None
    return start_guard(roots=heads, label=f"embedded Ray session {node.session_name}")


@dataclass(frozen=True)
class _Task:
    """One unit of actor work: the ``part``-th sub-range ``[start, stop)`` of ``chunk``."""

    chunk: ChunkRange
    part: int
    start: int
    stop: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.chunk.index, self.part)


class _ChunkWorker:
    """Actor body: scores chunk ranges with a scorer it is handed (``adopt``: the one the driver built and
    put in the object store once) or builds itself (``build=True``: calls the factory, i.e. loads the
    models). An actor that Ray restarted after a crash has lost its scorer and builds its own on its first
    task: the factory is passed by value, so a restart never depends on an object-store argument."""

    def __init__(self, factory: ScorerFactory, build: bool = True) -> None:
        self._factory = factory
        self._scorer: ChunkScorer | None = None
        self._single_threaded()
        if build:
            self._scorer = factory()
            self._single_threaded()  # the factory may have imported torch (MLP ensembles)

    @staticmethod
    def _single_threaded() -> None:
        if "torch" in sys.modules:  # the runtime env already sets OMP_NUM_THREADS=1 before torch imports
            sys.modules["torch"].set_num_threads(1)

    def adopt(self, scorer: ChunkScorer) -> int:
        self._scorer = scorer
        self._single_threaded()  # unpickling the models may have imported torch
        return os.getpid()

    def ready(self) -> int:
        return os.getpid()

    def score(self, start: int, stop: int) -> ChunkResult:
        if self._scorer is None:  # restarted by Ray after a crash: rebuild from the factory
            self._scorer = self._factory()
            self._single_threaded()
        return self._scorer(start, stop)


class RayExecutor:
    """Runs chunks on Ray actors. Needs an initialised Ray (see ``ray_session``).

    ``num_workers``: actors to start (default: the cluster's CPU count, capped by the number of chunks);
    ``max_task_size``: a chunk is scored by its actors as consecutive sub-ranges of at most this many
    candidates, merged back into one chunk result in order (``None``: whole chunks). Chunks are the unit of
    storage and resume; sub-ranges are the unit of load balancing. The work of a chunk varies a lot (a chunk
    of candidates that all fail charge neutrality costs a few percent of a chunk that is scored), so with
    whole chunks one worker was often left alone with the last expensive chunk, and a screen with a single
    expensive chunk ran on one core;
    ``per_worker``: tasks queued per actor (2 keeps an actor busy while the driver stores a result);
    ``share_scorer``: build the scorer once in the driver (load the models once per screen), put it in the
    object store and hand it to every actor, instead of every actor calling the factory (importing MLflow
    and loading the models itself: seconds per worker, on the cores the screen needs). The workers then
    read the model arrays from shared memory. Off: each actor calls the factory (a driver that must not
    load models, e.g. on a machine without the model store);
    ``max_restarts`` / ``max_task_retries``: Ray's own recovery of a crashed actor process.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        per_worker: int = 2,
        max_restarts: int = 2,
        max_task_retries: int = 2,
        max_task_size: int | None = DEFAULT_MAX_TASK_SIZE,
        share_scorer: bool = True,
    ) -> None:
        if max_task_size is not None and max_task_size < 1:
            raise ValueError(f"max_task_size must be >= 1 or None, got {max_task_size}")
        self.num_workers = num_workers
        self.per_worker = per_worker
        self.max_task_size = max_task_size
        self.max_restarts = max_restarts
        self.max_task_retries = max_task_retries
        self.share_scorer = share_scorer

    def _worker_count(self, n_chunks: int) -> int:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return max(1, min(self.num_workers or cpus, n_chunks))

    def run(
        self, factory: ScorerFactory, chunks: Sequence[ChunkRange], max_attempts: int
    ) -> Iterator[ChunkOutcome]:
        if not chunks:
            return
        if not ray.is_initialized():
            raise RuntimeError("RayExecutor needs an initialised Ray: run it inside ray_session()")
        actor_cls = ray.remote(
            num_cpus=1, max_restarts=self.max_restarts, max_task_retries=self.max_task_retries
        )(_ChunkWorker)
        # The factory (spec + store URI + versions, a few kB) is passed by value, not as an object-store
        # reference, so a restarted actor can always rebuild itself (ray-project/ray#53727). The shared
        # scorer goes to each actor as a task argument (``adopt``), which a restart does not replay.
        n_workers = self._worker_count(len(chunks))
        share = self.share_scorer
        actors: list[Any] = [actor_cls.remote(factory, not share) for _ in range(n_workers)]
        shared: Any = None

        def start_actor() -> Any:
            handle: Any = actor_cls.remote(factory, shared is None)
            if shared is not None:
                handle.adopt.remote(shared)  # runs before any score task (actor tasks run in order)
            return handle

        try:
            if share:  # the actors' processes start (and import) while the driver loads the models
                shared = ray.put(factory())
                for actor in actors:
                    actor.adopt.remote(shared)
            try:
                pids = ray.get([a.ready.remote() for a in actors])
            except RayError as exc:
                raise RuntimeError(f"screening workers could not start: {_describe(exc)}") from exc
            logger.info("%d Ray workers ready (pids %s)", n_workers, pids)
            yield from self._schedule(actors, start_actor, chunks, max_attempts)
        finally:
            for actor in actors:
                ray.kill(actor)

    def _tasks(self, chunks: Sequence[ChunkRange]) -> deque[_Task]:
        """The chunks cut into tasks of at most ``max_task_size`` candidates, in chunk order."""
        return deque(
            _Task(chunk, part, start, stop)
            for chunk in chunks
            for part, (start, stop) in enumerate(
                split_range(chunk.start, chunk.stop, self.max_task_size or chunk.size or 1)
            )
        )

    def _schedule(
        self,
        actors: list[Any],
        start_actor: Callable[[], Any],
        chunks: Sequence[ChunkRange],
        max_attempts: int,
    ) -> Iterator[ChunkOutcome]:
        tasks = self._tasks(chunks)
        parts: dict[int, list[ChunkResult | None]] = {}
        for task in tasks:
            parts.setdefault(task.chunk.index, []).append(None)
        attempts: dict[tuple[int, int], int] = {}
        errors: dict[int, list[str]] = {}
        given_up: set[int] = set()  # chunks already reported as failed: their other parts are dropped
        load = [0] * len(actors)
        in_flight: dict[Any, tuple[_Task, int, Any]] = {}

        def fill() -> None:
            for slot in sorted(range(len(actors)), key=load.__getitem__):
                while tasks and load[slot] < self.per_worker:
                    task = tasks.popleft()
                    if task.chunk.index in given_up:
                        continue
                    attempts[task.key] = attempts.get(task.key, 0) + 1
                    actor = actors[slot]
                    in_flight[actor.score.remote(task.start, task.stop)] = (task, slot, actor)
                    load[slot] += 1

        def chunk_attempts(index: int) -> int:
            return max(n for (i, _), n in attempts.items() if i == index)

        fill()
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            task, slot, actor = in_flight.pop(ref)
            chunk = task.chunk
            load[slot] -= 1
            try:
                result: ChunkResult = ray.get(ref)
            except RayError as exc:
                reason = _describe(exc)
                if isinstance(exc, RayActorError) and actors[slot] is actor:
                    # Ray gave up restarting this actor: replace it so the remaining chunks still run.
                    logger.warning("Ray worker %d died (%s); starting a new one", slot, reason)
                    ray.kill(actor)
                    actors[slot] = start_actor()
                if chunk.index not in given_up:
                    errors.setdefault(chunk.index, []).append(reason)
                    n = attempts[task.key]
                    _warn_failed(task, n, max_attempts, reason)
                    if n < max_attempts:
                        tasks.appendleft(task)
                    else:
                        given_up.add(chunk.index)
                        del parts[chunk.index]
                        yield ChunkOutcome(chunk, None, error=reason, attempts=n, errors=errors[chunk.index])
            else:
                done = parts.get(chunk.index)
                if done is not None:  # None: the chunk was given up, this part is not needed
                    done[task.part] = result
                    if all(p is not None for p in done):
                        del parts[chunk.index]
                        yield ChunkOutcome(
                            chunk,
                            merge_results([p for p in done if p is not None]),
                            attempts=chunk_attempts(chunk.index),
                            errors=errors.get(chunk.index, []),
                        )
            fill()


def _warn_failed(task: _Task, attempt: int, max_attempts: int, reason: str) -> None:
    """Log a failed task of a chunk with its attempt number."""
    chunk = task.chunk
    logger.warning(
        "chunk %d [%d, %d) failed on [%d, %d) (attempt %d/%d): %s",
        chunk.index,
        chunk.start,
        chunk.stop,
        task.start,
        task.stop,
        attempt,
        max_attempts,
        reason,
    )
