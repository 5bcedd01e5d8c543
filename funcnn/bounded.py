"""Reading ``.npz`` and ``.npy`` files with bounded memory: nothing is decompressed or allocated
before the file's own declarations say it fits.

An ``.npz`` is a zip of ``.npy`` members. Before a member is read, :func:`read_npz_member` checks

* its declared uncompressed size against the memory budget (:func:`funcnn.footprint.memory_budget`);
* for a compressed member, that it expands at most :data:`MAX_EXPANSION` times its compressed
  size (or to at most :data:`SMALL_MEMBER` bytes): a deflate bomb (1 MB of zeros that inflates
  to 1 GB) is refused before one byte is inflated;
* its ``.npy`` header (magic, dtype, shape, read from the first bytes alone): the array it
  declares must be exactly as large as the member's remaining bytes, so a header cannot make
  NumPy allocate more than the file holds.

zipfile never inflates a member past its declared size (it stops there and the CRC check
fails), so the declared size bounds the memory a read takes. :func:`check_npy_file` applies
the header check to a plain ``.npy`` file (its size on disk instead of the member's).
Refusals are ``ValueError``s naming the file and the member.
"""
from __future__ import annotations

import math
import os
import zipfile
from typing import Any, BinaryIO, Tuple

import numpy as np

from .footprint import format_bytes, memory_budget

#: A compressed member may expand at most this many times its compressed size ...
MAX_EXPANSION = 200
#: ... unless it is at most this large once expanded (small members are harmless whatever their ratio).
SMALL_MEMBER = 16 << 20


def read_header(fh: BinaryIO) -> Tuple[Tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, header bytes)`` of the ``.npy`` stream ``fh``, reading its header only."""
    start = fh.tell() if fh.seekable() else 0
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), fortran, dtype, (fh.tell() - start) if fh.seekable() else -1


def _declared(shape: Tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def check_declared(where: str, shape: Tuple[int, ...], dtype: np.dtype, data_bytes: int, budget: Any = None,
                   in_memory: bool = True) -> None:
    """The array a header declares fits the budget (when it is to be read ``in_memory``, not memory-mapped)
    and the bytes that follow the header hold exactly it."""
    if dtype.hasobject:
        return  # read_array(allow_pickle=False) refuses it with its own message
    nbytes = _declared(shape, dtype)
    limit = memory_budget(budget)
    if in_memory and nbytes > limit:
        raise ValueError(f"{where}: declares an array of shape {shape} and dtype {dtype} ({nbytes} bytes, "
                         f"{format_bytes(nbytes)}), over the memory budget of {limit} bytes ({format_bytes(limit)})")
    if data_bytes >= 0 and nbytes != data_bytes:
        raise ValueError(f"{where}: declares an array of shape {shape} and dtype {dtype} ({nbytes} bytes) but "
                         f"holds {data_bytes} bytes of data: the file is truncated or forged")


def check_member(path: str, info: zipfile.ZipInfo, budget: Any = None) -> None:
    """Refuse a zip member whose declared size is over the budget, or that would expand far beyond its compressed size."""
    where = f"{path}: member {info.filename!r}"
    limit = memory_budget(budget)
    if info.file_size > limit:
        raise ValueError(f"{where} expands to {info.file_size} bytes ({format_bytes(info.file_size)}), over the "
                         f"memory budget of {limit} bytes ({format_bytes(limit)}); refused before reading it")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(SMALL_MEMBER,
                                                                          MAX_EXPANSION * info.compress_size):
        raise ValueError(f"{where} would expand from {info.compress_size} to {info.file_size} bytes "
                         f"({info.file_size / max(1, info.compress_size):.0f}x; at most {MAX_EXPANSION}x is "
                         "accepted): a decompression bomb or a damaged file; refused before decompressing it")


def read_npz_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, budget: Any = None) -> np.ndarray:
    """The array in member ``info`` of the open ``.npz`` ``zf``, read with ``allow_pickle=False``
    after :func:`check_member` and the header check (ValueError naming ``path`` and the member)."""
    check_member(path, info, budget)
    with zf.open(info) as member:
        try:
            shape, _, dtype, header = read_header(member)
        except ValueError as exc:
            raise ValueError(f"{path}: member {info.filename!r} is not a valid .npy array ({exc})") from None
    check_declared(f"{path}: member {info.filename!r}", shape, dtype,
                   info.file_size - header if header >= 0 else -1, budget)
    with zf.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def check_npy_file(path: str, budget: Any = None, in_memory: bool = True) -> None:
    """Refuse an ``.npy`` file whose header declares more (or less) data than the file holds, or (to be read
    ``in_memory``, not memory-mapped) more than the budget."""
    with open(path, "rb") as fh:
        try:
            shape, _, dtype, header = read_header(fh)
        except ValueError as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
        size = os.fstat(fh.fileno()).st_size
    check_declared(path, shape, dtype, size - header, budget, in_memory)
