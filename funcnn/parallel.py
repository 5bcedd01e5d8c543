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
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator, List, Tuple

from . import memory as _memory

__all__ = ["PARTS", "MIN_PART", "parts", "map_parts", "workers", "active_workers"]

# A batch of n samples runs as min(PARTS, n // MIN_PART) parts (at least one): four quarters of a
# 128-sample minibatch; a batch below 2 * MIN_PART samples is one part (threads would cost more
# than they save, and a one-row predict stays a single call). On 2 cores 4 parts train as fast
# as 2 (A/B over 8 alternated epochs: 1.02, range 0.82-1.16), and they let 4 cores work.
PARTS = 4
MIN_PART = 16

_lock = threading.Lock()
# pool: the threads map_parts uses now (None outside workers()); threads: made once, kept
_state = {"depth": 0, "workers": 1, "limiter": None, "pool": None, "threads": None, "controller": None}


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing's "fork", joblib's multiprocessing backend) inherits the
    pool object but none of its threads, and perhaps a held lock: it starts afresh."""
    global _lock
    _lock = threading.Lock()
    _state.update(depth=0, workers=1, limiter=None, pool=None, threads=None)


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

    With w workers, worker j runs parts j, j + w, ...; the calling thread is worker 0 (so it
    never only waits, and nested or concurrent calls cannot deadlock).

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
    pool, w = _state["pool"], _state["workers"]
    if len(bounds) == 1 or pool is None:
        return [fn(a, b) for a, b in bounds]
    w = min(w, len(bounds))

    def group(j):
        return [fn(*bounds[i]) for i in range(j, len(bounds), w)]
    futures = [pool.submit(group, j) for j in range(1, w)]
    try:
        mine = group(0)
    finally:
        wait(futures)  # never return (or raise) while a worker may still write into the caller's arrays
    groups = [mine] + [f.result() for f in futures]
    return [groups[i % w][i // w] for i in range(len(bounds))]


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries (made once: scanning the loaded libraries takes
    milliseconds; None without threadpoolctl)."""
    if _state["controller"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return None
        _state["controller"] = ThreadpoolController().select(user_api="blas")
    return _state["controller"]


@contextlib.contextmanager
def workers(enabled: bool = True) -> Iterator[int]:
    """Run :func:`map_parts` on threads inside the block; yields the number of workers.

    At the outermost entry: workers = min(:data:`PARTS`, BLAS's thread count), and BLAS limited
    to one thread until the outermost exit (restored even on an exception). Nested and
    concurrent entries share that setting. ``enabled=False`` is a no-op (yields the current
    count). The worker threads are made once and wait, idle, between blocks.

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
                if _state["threads"] is None:
                    _state["threads"] = ThreadPoolExecutor(PARTS - 1, thread_name_prefix="funcnn-part")
                _state["pool"] = _state["threads"]
            _state["workers"] = n
        _state["depth"] += 1
    try:
        yield _state["workers"]
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                limiter = _state["limiter"]
                _state.update(limiter=None, pool=None, workers=1)
                if limiter is not None:
                    limiter.restore_original_limits()
                if _state.pop("memory", False):
                    _memory.release()
