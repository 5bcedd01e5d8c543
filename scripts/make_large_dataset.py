"""Write a large image data set as ``DIR/X.npy`` (uint8, (n, 784)) and ``DIR/y.npy`` (int64, (n,)).

A data directory that ``funcnn train --data DIR`` (and ``predict``/``evaluate``) reads
memory-mapped, one minibatch at a time, so that anyone can try training on data larger
than memory::

    python scripts/make_large_dataset.py --gigabytes 1.0 --out /tmp/big   # ~1.28 M rows, 1 GB X.npy
    python scripts/make_large_dataset.py --rows 200000 --out /tmp/big
    funcnn train --data /tmp/big --hidden 256,128 --epochs 1 --batch-size 128 --no-plot

Rows are Fashion-MNIST images (the 70 000 train + test images of the IDX files in
``--source-dir``, default ``/usr/share/datasets/fashion-mnist`` from Debian's
``dataset-fashion-mnist``) drawn at random with replacement, each shifted by up to
``--max-shift`` pixels (zero fill) and jittered by up to ``--jitter`` grey levels per pixel
(clipped to 0..255), so replicated rows differ. The order is random: funcnn's data
directories use the files' own order (the last rows are the test part). Without the
Fashion-MNIST files (or with ``--synthetic``) the images are synthetic: ten random smooth
class prototypes, each row one of them with a random shift, a random contrast and noise.

Nothing is held whole in memory: both files are created with ``np.lib.format.open_memmap``
and written ``--chunk-rows`` rows at a time (a chunk is a few MB). The same ``--seed`` gives
the same bytes. ``--quick`` writes 5 000 rows (to a new temporary directory unless ``--out``
is given), for the smoke test.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any, Dict, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402,F401  (puts the repository on sys.path when funcnn is not installed)

import numpy as np  # noqa: E402

from funcnn.datasets import DEFAULT_MNIST_DIR, load_idx  # noqa: E402

SIDE = 28
ROW = SIDE * SIDE  # 784 uint8 pixels a row
QUICK_ROWS = 5000


def source_images(directory: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The raw uint8 Fashion-MNIST images (n, 28, 28) and int64 labels, train and test together;
    None when the IDX files are missing."""
    names = [("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    images, labels = [], []
    for image_name, label_name in names:
        paths = []
        for stem in (image_name, label_name):
            found = [os.path.join(directory, stem + ext) for ext in ("", ".gz")
                     if os.path.isfile(os.path.join(directory, stem + ext))]
            if not found:
                return None
            paths.append(found[0])
        images.append(load_idx(paths[0]))
        labels.append(load_idx(paths[1]).astype(np.int64))
    X = np.concatenate(images)
    if X.dtype != np.uint8 or X.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{directory}: expected uint8 28x28 images, got {X.dtype} {X.shape}")
    return X, np.concatenate(labels)


def synthetic_prototypes(seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Ten smooth random 28x28 uint8 'class prototypes' and their labels 0..9."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((10, 7, 7))
    protos = np.kron(coarse, np.ones((4, 4)))  # blocky 28x28
    for _ in range(2):  # a little blur: average with the four neighbours
        protos = (protos + np.roll(protos, 1, 1) + np.roll(protos, -1, 1) + np.roll(protos, 1, 2)
                  + np.roll(protos, -1, 2)) / 5
    protos = (protos - protos.min()) / (protos.max() - protos.min())
    return np.round(protos * 255).astype(np.uint8), np.arange(10, dtype=np.int64)


def noisy_rows(base: np.ndarray, labels: np.ndarray, m: int, rng: np.random.Generator, max_shift: int,
               jitter: int, contrast: bool) -> Tuple[np.ndarray, np.ndarray]:
    """m rows (m, 784) uint8: random base images, each shifted by up to max_shift pixels and jittered."""
    pick = rng.integers(0, base.shape[0], size=m)
    pad = max_shift
    padded = np.zeros((m, SIDE + 2 * pad, SIDE + 2 * pad), dtype=np.int16)
    padded[:, pad:pad + SIDE, pad:pad + SIDE] = base[pick]
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, m))
    rows = (dy[:, None] + np.arange(SIDE))[:, :, None]
    cols = (dx[:, None] + np.arange(SIDE))[:, None, :]
    img = padded[np.arange(m)[:, None, None], rows, cols]
    if contrast:
        img = (img * rng.uniform(0.6, 1.0, size=(m, 1, 1))).astype(np.int16)
    if jitter:
        img += rng.integers(-jitter, jitter + 1, size=img.shape, dtype=np.int16)
    np.clip(img, 0, 255, out=img)
    return img.reshape(m, ROW).astype(np.uint8), labels[pick]


def write(out: str, n: int, *, source_dir: str = DEFAULT_MNIST_DIR, synthetic: bool = False, seed: int = 0,
          max_shift: int = 2, jitter: int = 12, chunk_rows: int = 8192) -> Dict[str, Any]:
    """Write ``out/X.npy`` and ``out/y.npy`` with ``n`` rows; returns what was written."""
    source = None if synthetic else source_images(source_dir)
    kind = "fashion-mnist" if source is not None else "synthetic"
    base, labels = source if source is not None else synthetic_prototypes(seed)
    os.makedirs(out, exist_ok=True)
    x_path, y_path = os.path.join(out, "X.npy"), os.path.join(out, "y.npy")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    X = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.uint8, shape=(n, ROW))
    y = np.lib.format.open_memmap(y_path, mode="w+", dtype=np.int64, shape=(n,))
    try:
        for lo in range(0, n, chunk_rows):
            m = min(chunk_rows, n - lo)
            X[lo:lo + m], y[lo:lo + m] = noisy_rows(base, labels, m, rng, max_shift, jitter,
                                                    contrast=kind == "synthetic")
        X.flush()
        y.flush()
    finally:
        del X, y
    return {"out": out, "rows": n, "kind": kind, "x_bytes": os.path.getsize(x_path),
            "y_bytes": os.path.getsize(y_path), "seconds": time.perf_counter() - start}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--gigabytes", type=float, default=None, help="size of X.npy in GB (10^9 bytes; default 1.0)")
    size.add_argument("--rows", type=int, default=None, help="number of rows")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS} rows, for a smoke test")
    parser.add_argument("--out", default=None, help="the data directory to write (default ./large-data; with "
                                                    "--quick a new temporary directory)")
    parser.add_argument("--source-dir", default=DEFAULT_MNIST_DIR,
                        help=f"Fashion-MNIST IDX files (default {DEFAULT_MNIST_DIR})")
    parser.add_argument("--synthetic", action="store_true", help="synthetic images even if Fashion-MNIST is there")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-shift", type=int, default=2, help="random shift in pixels, each axis (default 2)")
    parser.add_argument("--jitter", type=int, default=12, help="random +- grey levels per pixel (default 12)")
    parser.add_argument("--chunk-rows", type=int, default=8192, help="rows written at a time (default 8192)")
    args = parser.parse_args(argv)
    if args.quick and (args.rows is not None or args.gigabytes is not None):
        parser.error("--quick writes a fixed number of rows; drop --rows/--gigabytes")
    if args.quick:
        n = QUICK_ROWS
    elif args.rows is not None:
        n = args.rows
    else:
        n = int((1.0 if args.gigabytes is None else args.gigabytes) * 1e9) // ROW
    if n < 2:
        parser.error(f"need at least 2 rows, got {n}")
    if args.max_shift < 0 or not 0 <= args.jitter <= 255 or args.chunk_rows < 1:
        parser.error("--max-shift and --jitter must be >= 0 (jitter <= 255), --chunk-rows >= 1")
    out = args.out or (tempfile.mkdtemp(prefix="funcnn-large-data-") if args.quick else "large-data")
    result = write(out, n, source_dir=args.source_dir, synthetic=args.synthetic, seed=args.seed,
                   max_shift=args.max_shift, jitter=args.jitter, chunk_rows=args.chunk_rows)
    if result["kind"] == "synthetic" and not args.synthetic:
        print(f"no Fashion-MNIST IDX files in {args.source_dir} (apt-get install dataset-fashion-mnist): "
              "wrote synthetic images instead")
    print(f"wrote {out}/X.npy ({n} x {ROW} uint8, {result['x_bytes'] / 1e9:.3f} GB) and y.npy ({n} int64) from "
          f"{result['kind']} images in {result['seconds']:.1f} s; train with: funcnn train --data {out}")
    return result


if __name__ == "__main__":
    main()
