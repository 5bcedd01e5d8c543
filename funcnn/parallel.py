"""Sample-parallel execution of the image layers: a batch in a fixed number of parts, on threads.

A convolution or pooling of a minibatch is independent per sample, so ``funcnn.conv`` runs it
as ``parts(n)`` calls on consecutive runs of samples (:func:`map_parts`), and sums the kernel
and bias gradients of the parts in order. The parts depend on ``n`` alone, never on the
machine or on whether threads run them, so a result has the same bits run sequentially, on
two threads or on sixteen.

Threads run the parts only inside :func:`workers`. It takes the threads BLAS would have used: as
many workers as BLAS has threads at entry (at most :data:`PARTS`), and BLAS limited to one
thread inside, so the cores are not oversubscribed. Why: OpenBLAS's threads work only inside
each matrix product, which left the rest of the step (im2col, pooling, strided adds: about
half of it) on one core while its idle worker spun on the other; parts of the whole layer keep
every core busy.
With BLAS already limited to one thread (``threadpoolctl.threadpool_limits(1)``, as ``sweep``
runs its trials), the parts run one after the other on the calling thread.

The threads are funcnn's own (a job queue, not ``concurrent.futures``): the calling thread runs
its share of the parts and then any share no worker has started yet, and both the workers
and a waiting caller poll for :data:`SPIN_SECONDS` before they sleep, because the layers of a
step call :func:`map_parts` back to back and a sleeping core is slow to wake on virtual
machines. Inside :func:`workers`, freed memory is also kept for the next step
(:func:`funcnn.memory.kept`).

``train``, ``predict``/``evaluate`` and the public ``forward``, ``backward`` and
``value_and_grad`` of a network with image layers (``funcnn.network.uses_parts``) enter
:func:`workers`, so their matrix products all run with the same BLAS threads (OpenBLAS can
round the last bit differently with one thread and with two for some shapes): a hand-written
loop of the public functions reproduces ``train`` bit for bit. The building blocks
(``funcnn.network.run_forward``, ``objective``, ...) do not enter it: call them inside
``with workers():`` for ``train``'s bits. Outside :func:`workers` the parts run one after the
other: the same parts, no threads.
"""
from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

from . import memory as _memory

__all__ = ["PARTS", "MIN_PART", "PART_BYTES", "SPIN_SECONDS", "parts", "map_parts", "map_large", "workers",
           "active_workers"]

# A batch of n samples runs as min(PARTS, n // MIN_PART) parts (at least one): four quarters of a
# 128-sample minibatch; a batch below 2 * MIN_PART samples is one part (threads would cost more
# than they save, and a one-row predict stays a single call). On 2 cores 4 parts train as fast
# as 2 (A/B over 8 alternated epochs: 1.02, range 0.82-1.16), and they let 4 cores work.
PARTS = 4
MIN_PART = 16

# Elementwise passes (batch norm's, the ReLU's) run per part of the samples only from this many
# bytes of input on, a rule of the shapes alone (so the bits still do not depend on the
# threads): below it, as for a dense layer's batch, the parts' extra NumPy calls cost more than
# a second core saves.
PART_BYTES = 1 << 20

# How long a worker thread, and a caller waiting for one, poll (yielding the GIL) before they
# sleep. The layers of a step call map_parts back to back, a fraction of a millisecond apart;
# a thread that sleeps on a lock in between must be woken by the kernel each time, and on
# virtual machines waking an idle core is slow enough to leave both cores idle for a good part
# of every call. OpenMP runtimes and OpenBLAS spin before sleeping for the same reason.
SPIN_SECONDS = 0.002

_lock = threading.Lock()
# pool: the job queue map_parts uses now (None outside workers()); jobs/threads: the queue and
# its worker threads, made once and kept; memory: whether the outermost entry holds funcnn.memory;
# controller/modules: the BLAS view and len(sys.modules) when it was made
_state = {"depth": 0, "workers": 1, "limiter": None, "pool": None, "jobs": None, "threads": 0, "memory": False,
          "controller": None, "modules": 0}


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing's "fork", joblib's multiprocessing backend) inherits the
    pool object but none of its threads, and perhaps a held lock: it starts afresh."""
    global _lock
    _lock = threading.Lock()
    _state.update(depth=0, workers=1, limiter=None, pool=None, jobs=None, threads=0, memory=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parts(n: int) -> List[Tuple[int, int]]:
    """The ``(start, stop)`` runs of samples a batch of ``n`` is split into: equal sizes, the first
    ones one larger when ``n`` does not divide.

    ``min(PARTS, n // MIN_PART)`` parts, at least one; they depend on ``n`` alone, so results
    are the same bits on threads or sequentially.

    Examples:
        >>> parts(10)
        [(0, 10)]
        >>> parts(130)
        [(0, 33), (33, 66), (66, 98), (98, 130)]
    """
    k = max(1, min(PARTS, n // MIN_PART))
    size, extra = divmod(n, k)
    bounds, start = [], 0
    for i in range(k):
        stop = start + size + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def active_workers() -> int:
    """How many threads run parts now: 1 outside :func:`workers` (or with BLAS at one thread)."""
    return _state["workers"]


def map_parts(fn: Callable[[int, int], Any], n: int) -> List[Any]:
    """``[fn(start, stop) for each part of n]``, in order; on the worker threads inside :func:`workers`.

    With w workers, group j holds parts j, j + w, ...; the calling thread runs group 0, queues
    the others for the worker threads, and then runs any queued group no worker has started
    (so it never only waits, a late worker costs nothing, and nested or concurrent calls
    cannot deadlock). Every group has finished when it returns or raises (the first error of
    the groups, in order).

    Args:
        fn: ``fn(start, stop)`` computes one part (writing into disjoint slices, or returning
            a value).
        n: the number of samples.

    Returns:
        The parts' results, in the order of :func:`parts`.

    Examples:
        >>> map_parts(lambda start, stop: stop - start, 64)
        [16, 16, 16, 16]
    """
    bounds = parts(n)
    jobs, w = _state["pool"], _state["workers"]
    if len(bounds) == 1 or jobs is None:
        return [fn(a, b) for a, b in bounds]
    w = min(w, len(bounds))

    def group(j):
        return [fn(*bounds[i]) for i in range(j, len(bounds), w)]
    queued = [_Job(group, j) for j in range(1, w)]
    for job in queued:
        jobs.put(job)
    try:
        mine = group(0)
    finally:
        # never return (or raise) while a worker may still write into the caller's arrays
        for job in queued:
            job.take()
            job.wait()
    for job in queued:
        if job.error is not None:
            raise job.error
    groups = [mine] + [job.result for job in queued]
    return [groups[i % w][i // w] for i in range(len(bounds))]


def map_large(fn: Callable[[int, int], Any], x: Any) -> List[Any]:
    """:func:`map_parts` over ``x``'s samples when ``x`` has at least :data:`PART_BYTES`, else
    ``[fn(0, len(x))]``: one call on the whole batch.

    Examples:
        >>> import numpy as np
        >>> map_large(lambda start, stop: stop - start, np.zeros((64, 3)))
        [64]
    """
    if x.nbytes < PART_BYTES:
        return [fn(0, x.shape[0])]
    return map_parts(fn, x.shape[0])


class _Job:
    """One group of parts: run once, by the first thread that claims it (a worker or the caller)."""
    __slots__ = ("fn", "arg", "claim", "done", "result", "error")

    def __init__(self, fn: Callable[[int], Any], arg: int) -> None:
        self.fn, self.arg = fn, arg
        self.claim = threading.Lock()
        self.done = False
        self.result: Any = None
        self.error: Optional[BaseException] = None

    def take(self) -> None:
        """Run it here unless another thread has claimed it."""
        if self.claim.acquire(blocking=False):
            try:
                self.result = self.fn(self.arg)
            except BaseException as e:  # handed to the caller, which raises it
                self.error = e
            finally:
                self.done = True

    def wait(self) -> None:
        """Until it has run, polling (a worker is running it); an interrupt waits for it too."""
        interrupted = None
        while True:
            try:
                while not self.done:
                    time.sleep(0)
                break
            except KeyboardInterrupt as e:
                interrupted = e
        if interrupted is not None:
            raise interrupted


def _next_job(jobs: "queue.SimpleQueue[_Job]") -> _Job:
    """The next queued job: polled for :data:`SPIN_SECONDS`, then waited for."""
    end = time.perf_counter() + SPIN_SECONDS
    while True:
        try:
            return jobs.get_nowait()
        except queue.Empty:
            if time.perf_counter() > end:
                return jobs.get()
            time.sleep(0)


def _work(jobs: "queue.SimpleQueue[_Job]") -> None:
    while True:
        _next_job(jobs).take()


def _ensure_threads(count: int) -> "queue.SimpleQueue[_Job]":
    """The job queue, with at least ``count`` worker threads (daemons: they only ever wait or run a job)."""
    if _state["jobs"] is None:
        _state["jobs"] = queue.SimpleQueue()
    while _state["threads"] < count:
        threading.Thread(target=_work, args=(_state["jobs"],), daemon=True,
                         name=f"funcnn-part-{_state['threads'] + 1}").start()
        _state["threads"] += 1
    return _state["jobs"]


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries (None without threadpoolctl).

    Scanning the loaded libraries takes milliseconds, so the view is kept, and made again only
    when modules were imported since: an import is how a second BLAS arrives (SciPy's own
    OpenBLAS with ``scipy.linalg``, torch's), and a view made before it would leave that BLAS at
    its full thread count inside :func:`workers`.
    """
    modules = len(sys.modules)
    if _state["controller"] is None or _state["modules"] != modules:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return None
        _state["controller"] = ThreadpoolController().select(user_api="blas")
        _state["modules"] = len(sys.modules)  # after the import above
    return _state["controller"]


@contextlib.contextmanager
def workers(enabled: bool = True) -> Iterator[int]:
    """Run :func:`map_parts` on threads inside the block; yields the number of workers.

    At the outermost entry: workers = min(:data:`PARTS`, BLAS's thread count), and BLAS limited
    to one thread until the outermost exit (restored even on an exception). Nested and
    concurrent entries share that setting. ``enabled=False`` is a no-op (yields the current
    count). The worker threads are made once (as many as the most workers yet) and kept; after
    each job they poll for :data:`SPIN_SECONDS`, then sleep until the next.

    Args:
        enabled: False makes the block a no-op.

    Yields:
        The number of workers (1 when BLAS has one thread).

    Examples:
        >>> with workers() as w:
        ...     sizes = map_parts(lambda start, stop: stop - start, 64)
        >>> sizes
        [16, 16, 16, 16]
    """
    if not enabled:
        yield _state["workers"]
        return
    with _lock:
        if _state["depth"] == 0:
            _state["memory"] = _memory.hold()
            controller = _blas_controller()
            blas = [lib.num_threads for lib in controller.lib_controllers] if controller is not None else []
            n = min(PARTS, max(blas)) if blas else 1
            if n > 1:
                _state["limiter"] = controller.limit(limits=1)
                _state["pool"] = _ensure_threads(n - 1)
            _state["workers"] = n
        _state["depth"] += 1
    try:
        yield _state["workers"]
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                limiter = _state["limiter"]
                held = _state["memory"]
                _state.update(limiter=None, pool=None, workers=1, memory=False)
                if limiter is not None:
                    limiter.restore_original_limits()
                if held:
                    _memory.release()
