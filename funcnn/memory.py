"""The C allocator while funcnn runs an image network: memory freed by a step is reused by the next.

A training step of an image network allocates and frees hundreds of MB (activations, im2col
columns, gradients), step after step. glibc's malloc hands the top of its heap back to the
system once more than its trim threshold is free (at most 64 MB under its own dynamic rule)
and serves blocks above its mmap threshold (128 kB until a larger block is freed) with fresh
mappings, so each step page-faults, and the kernel zeroes, most of that memory again: on some
virtual machines that was a third of the step, as system time. Inside :func:`kept`, freed
memory stays in the heap (trim threshold :data:`TRIM_BYTES`) and blocks up to
:data:`MMAP_BYTES` (the upper bound of glibc's own dynamic threshold) come from it; at the
outermost exit the trim threshold is set to glibc's dynamic maximum (twice
:data:`MMAP_BYTES`), the state glibc itself reaches after freeing a large block, and glibc
hands the free memory back by its own rule at a later free. (Not at once with
``malloc_trim``: a one-row ``predict`` would then fault its few arrays in anew every call.)
Results are unaffected (only where memory comes from changes).

Only where the C library is glibc (Linux); elsewhere :func:`kept` does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading
from typing import Iterator, Optional

__all__ = ["MMAP_BYTES", "TRIM_BYTES", "available", "hold", "release", "kept"]

# mallopt's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

MMAP_BYTES = 32 << 20
TRIM_BYTES = 1 << 30

_lock = threading.Lock()
_state = {"depth": 0, "libc": None, "looked": False}


def _after_fork_in_child() -> None:
    """A forked child holds nothing yet (its parent's holds are the parent's to release)."""
    global _lock
    _lock = threading.Lock()
    _state["depth"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _libc() -> Optional[ctypes.CDLL]:
    """glibc, or None (another C library, or no mallopt)."""
    if not _state["looked"]:
        _state["looked"] = True
        try:
            if platform.libc_ver()[0] == "glibc":
                libc = ctypes.CDLL(None)
                if hasattr(libc, "mallopt"):
                    _state["libc"] = libc
        except (OSError, ValueError):  # pragma: no cover - no C library to load
            pass
    return _state["libc"]


def available() -> bool:
    """Whether :func:`kept` changes anything here (glibc's malloc)."""
    return _libc() is not None


def hold() -> bool:
    """Start keeping freed memory (counted: the settings change at the first :func:`hold` only).

    Returns:
        Whether the allocator's settings are changed (False where the C library is not glibc).
    """
    libc = _libc()
    if libc is None:
        return False
    with _lock:
        if _state["depth"] == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
        _state["depth"] += 1
    return True


def release() -> None:
    """Undo one :func:`hold`; the last one restores glibc's trim threshold (twice :data:`MMAP_BYTES`)."""
    libc = _libc()
    if libc is None:
        return
    with _lock:
        if _state["depth"] == 0:
            raise RuntimeError("funcnn.memory.release() without a matching hold()")
        _state["depth"] -= 1
        if _state["depth"] == 0:
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_BYTES)


@contextlib.contextmanager
def kept() -> Iterator[bool]:
    """Keep freed memory for reuse inside the block (:func:`hold` at entry, :func:`release` at exit).

    Yields:
        Whether the allocator's settings were changed (False where the C library is not glibc).

    Examples:
        >>> with kept():
        ...     pass
    """
    changed = hold()
    try:
        yield changed
    finally:
        if changed:
            release()
