"""What a network costs before it runs: per-layer shapes, parameters, multiply-adds and memory.

One home for the arithmetic that :func:`summary` prints, that inference uses to size its chunks
(:func:`funcnn.network.widest_row`, :func:`inference_chunk`) and that the memory budget checks
(:func:`check_budget`). Everything is derived from the spec and one sample's input shape, from
the facts of each :data:`funcnn.layers.LAYERS` entry: ``shape`` (output shape and arrays),
``macs(layer, in_shape, out_shape)`` (multiply-adds per sample; 0 for elementwise layers) and
``scratch(layer, in_shape, out_shape)`` (elements per sample a layer allocates besides its
output: a convolution's padded input and im2col columns, a max pool's argmax indices).

Per sample, in the dtype's bytes:

* **inference** — the peak of one layer's input + output + scratch (``max`` over layers);
  inference keeps no caches, so layers do not add up;
* **training** — the input, every layer's output and scratch (what the caches keep for the
  backward pass; a convolution keeps its columns), plus two gradient arrays of the widest
  size (``g`` and ``dx``); an estimate that NumPy's small temporaries do not change much.

The **memory budget** (:func:`memory_budget`) bounds both: one sample whose inference or
training footprint exceeds it is refused (a ``ValueError`` naming the layer path and the
bytes) by ``init_params``, ``load`` and every function that takes data; inference chunks
are cut so that a chunk's footprint stays within it; ``train`` refuses a minibatch that
would not fit. The budget is, in order: the ``budget=`` argument where a function takes one,
the environment variable ``FUNCNN_MEMORY_BUDGET`` (bytes, with an optional ``K``/``M``/``G``/``T``
suffix (powers of 1024), or a percentage of physical memory such as ``"50%"``), else
:data:`DEFAULT_FRACTION` of the machine's physical memory (or of the cgroup's limit, when
lower; 4 GiB when neither can be read).
"""
from __future__ import annotations

import functools
import math
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .layers import LAYERS, Shape, check_spec, remember, spec_key

Spec = List[Dict[str, Any]]

#: The share of physical memory the default budget allows.
DEFAULT_FRACTION = 0.25
#: The environment variable that overrides the default budget.
BUDGET_VARIABLE = "FUNCNN_MEMORY_BUDGET"
_FALLBACK_MEMORY = 16 << 30
_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


# --------------------------------------------------------------------------- the budget

@functools.lru_cache(maxsize=None)  # a fact of the machine, read once
def physical_memory() -> int:
    """Bytes of memory this process may use: physical memory, or the cgroup's limit when lower."""
    total = None
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) > 0:
            total = int(text) if total is None else min(total, int(text))
    return int(total) if total and total > 0 else _FALLBACK_MEMORY


def parse_bytes(text: Any, name: str = BUDGET_VARIABLE) -> int:
    """``"2G"`` → 2147483648, ``"512M"``, ``"1000000"``, ``"50%"`` (of :func:`physical_memory`); ints pass."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, (bool, np.bool_)):
        value = int(text)
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT%]?)i?B?\s*", str(text), flags=re.IGNORECASE)
        if match is None:
            raise ValueError(f"{name}={text!r} is not a byte count: use e.g. 2000000000, 512M, 2G or 50%")
        number, unit = float(match.group(1)), match.group(2).upper()
        value = int(number / 100 * physical_memory()) if unit == "%" else int(number * _SUFFIXES[unit])
    if value < 1:
        raise ValueError(f"{name}={text!r}: the memory budget must be at least 1 byte")
    return value


def memory_budget(budget: Any = None) -> int:
    """The memory budget in bytes: ``budget`` if given, else ``$FUNCNN_MEMORY_BUDGET``, else
    :data:`DEFAULT_FRACTION` of :func:`physical_memory` (see the module docstring)."""
    if budget is not None:
        return parse_bytes(budget, "budget")
    text = os.environ.get(BUDGET_VARIABLE)
    if text:
        return parse_bytes(text)
    return int(DEFAULT_FRACTION * physical_memory())


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


# --------------------------------------------------------------------------- per-layer rows

def _rows(spec: Sequence[Dict[str, Any]], in_shape: Shape, prefix: str, depth: int, out: List[Dict[str, Any]]
          ) -> Shape:
    """Append one row per layer of ``spec`` (blocks: the block, then its inner layers); return the output shape."""
    shape = tuple(in_shape)
    for i, layer in enumerate(spec):
        path = f"{prefix}{i}"
        kind = layer["type"]
        entry = LAYERS[kind]
        own, out_shape = entry["shape"](layer, shape, f"spec[{path}] ({kind})")
        out_shape = tuple(int(d) for d in out_shape)
        children = entry.get("children")
        row: Dict[str, Any] = {"path": path, "type": kind, "depth": depth, "input_shape": shape,
                               "output_shape": out_shape, "block": children is not None}
        out.append(row)
        if children is not None:
            start = len(out)
            for label, sub in children(layer):
                if sub:
                    _rows(sub, shape, f"{path}.{label}.", depth + 1, out)
            inner = [r for r in out[start:] if not r["block"]]
            row["params"] = sum(r["params"] for r in inner)
            row["trainable_params"] = sum(r["trainable_params"] for r in inner)
            row["macs"] = sum(r["macs"] for r in inner)
            # a block holds its input while its paths run, then the paths' outputs, then merges
            row["scratch"] = max([0] + [r["peak"] for r in out[start:]]) + sum(
                r["output"] for r in out[start:] if r["depth"] == depth + 1)
            row["kept"] = sum(r["kept"] for r in inner)
        else:
            trainable = set(entry["trainable"])
            row["params"] = sum(math.prod(s) for s in own.values())
            row["trainable_params"] = sum(math.prod(s) for k, s in own.items() if k in trainable)
            row["macs"] = int(entry.get("macs", _zero)(layer, shape, out_shape))
            row["scratch"] = int(entry.get("scratch", _zero)(layer, shape, out_shape))
            row["kept"] = math.prod(out_shape) + row["scratch"]
        row["output"] = math.prod(out_shape)
        row["peak"] = math.prod(shape) + row["output"] + row["scratch"]
        shape = out_shape
    return shape


def _zero(layer, in_shape, out_shape) -> int:
    return 0


# Per (spec_key, input shape): the rows. Inference asks for them on every large predict.
_MEMO: Dict[Any, Tuple[List[Dict[str, Any]], Shape]] = {}


def layer_rows(spec: Spec, in_shape: Shape) -> List[Dict[str, Any]]:
    """The per-layer facts, in elements per sample (memoised by the spec's content): ``path``,
    ``type``, ``depth``, ``input_shape``, ``output_shape``, ``params``, ``trainable_params``,
    ``macs``, ``output``, ``scratch``, ``peak`` (input + output + scratch), ``kept``, ``block``.
    Assumes a valid spec; a layer that does not accept its input raises its ValueError."""
    in_shape = tuple(int(d) for d in in_shape)
    key = spec_key(spec)
    facts = _MEMO.get((key, in_shape)) if key is not None else None
    if facts is None:
        rows: List[Dict[str, Any]] = []
        _rows(spec, in_shape, "", 0, rows)
        facts = (rows, in_shape)
        if key is not None:
            remember(_MEMO, (key, in_shape), facts)
    return facts[0]


def per_sample(spec: Spec, in_shape: Shape, itemsize: int) -> Dict[str, Any]:
    """Bytes per sample: ``inference`` (peak of one layer, and which: ``inference_path``),
    ``training`` (the estimate of the module docstring), and ``widest`` (elements of the widest
    array inference makes: the input or a layer's output)."""
    rows = layer_rows(spec, in_shape)
    top = [r for r in rows if r["depth"] == 0]
    n_in = math.prod(in_shape)
    widest = max([n_in] + [r["output"] for r in rows])
    peak_row = max(top, key=lambda r: r["peak"])
    leaves = [r for r in rows if not r["block"]]
    training = n_in + sum(r["kept"] for r in leaves) + 2 * widest
    train_row = max(leaves, key=lambda r: r["kept"])
    return {"inference": peak_row["peak"] * itemsize, "inference_path": peak_row["path"],
            "inference_type": peak_row["type"], "training": training * itemsize,
            "training_path": train_row["path"], "training_type": train_row["type"], "widest": widest}


def _shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def check_budget(spec: Spec, in_shape: Shape, dtype: Any = np.float32, *, rows: int = 1, training: bool = False,
                 budget: Any = None, where: str = "") -> Dict[str, Any]:
    """Refuse (``ValueError`` naming the layer path, its output shape and the bytes) a network whose
    footprint for ``rows`` samples of ``in_shape`` exceeds the memory budget; returns :func:`per_sample`.

    The footprint is the params (training: four copies, for the gradients and two optimizer slots)
    plus ``rows`` times the per-sample bytes of :func:`per_sample`.
    """
    itemsize = np.dtype(dtype).itemsize
    facts = per_sample(spec, in_shape, itemsize)
    limit = memory_budget(budget)
    what = "training" if training else "inference"
    leaves = [r for r in layer_rows(spec, in_shape) if not r["block"]]
    param_bytes = sum(r["params"] for r in leaves) * itemsize * (4 if training else 1)
    need = param_bytes + facts[what] * rows
    if need <= limit:
        return facts
    shape = _shape_text(tuple(in_shape))
    fix = f"; raise the budget with {BUDGET_VARIABLE} if this is intended"
    if param_bytes >= facts[what] * rows:  # the arrays, not the activations, are what does not fit
        row = max(leaves, key=lambda r: r["params"])
        raise ValueError(f"{where}layer {row['path']} ({row['type']}) on inputs of shape {shape} owns "
                         f"{row['params']:,} parameters ({row['params'] * itemsize} bytes, "
                         f"{format_bytes(row['params'] * itemsize)}); {what} needs {need} bytes "
                         f"({format_bytes(need)}), over the memory budget of {limit} bytes ({format_bytes(limit)}){fix}")
    path, kind = facts[f"{what}_path"], facts[f"{what}_type"]
    row = next(r for r in layer_rows(spec, in_shape) if r["path"] == path)
    count = f"{rows} samples" if rows != 1 else "one sample"
    if training and rows > 1 and param_bytes + facts[what] <= limit:
        fix = f"; lower batch_size (at most {max(1, (limit - param_bytes) // facts[what])} fit)" + fix
    raise ValueError(f"{where}layer {path} ({kind}) on inputs of shape {shape}: {what} of {count} needs "
                     f"{need} bytes ({format_bytes(need)}; output {_shape_text(row['output_shape'])} per sample), "
                     f"over the memory budget of {limit} bytes ({format_bytes(limit)}){fix}")


def inference_chunk(spec: Spec, in_shape: Shape, dtype: Any, target_bytes: int, min_rows: int,
                    budget: Any = None) -> int:
    """Rows per inference chunk: about ``target_bytes`` in the widest array, at least ``min_rows``,
    and never more than the memory budget allows (one row at least; a row over the budget is refused)."""
    itemsize = np.dtype(dtype).itemsize
    facts = check_budget(spec, in_shape, dtype, budget=budget)
    chunk = max(min_rows, target_bytes // max(1, facts["widest"] * itemsize))
    leaves = [r for r in layer_rows(spec, in_shape) if not r["block"]]
    room = memory_budget(budget) - sum(r["params"] for r in leaves) * itemsize
    return max(1, min(chunk, room // max(1, facts["inference"])))


# --------------------------------------------------------------------------- the summary

def summary(spec: Spec, n_inputs: Any, *, dtype: Any = np.float32) -> Dict[str, Any]:
    """The table Keras's ``model.summary()`` prints, as plain data.

    ``{"input_shape": (...), "dtype": "float32", "rows": [...], "totals": {...}}``: one row per
    layer (blocks first, then their inner layers, with their paths) holding ``path``, ``type``,
    ``output_shape``, ``params`` (every array the layer owns, running statistics included),
    ``trainable_params``, ``macs`` (multiply-adds per sample) and ``activation_bytes`` (its
    output per sample); totals ``params``, ``trainable_params``, ``param_bytes``, ``macs``,
    ``inference_bytes`` and ``training_bytes`` per sample (see the module docstring) and
    ``memory_budget``. ``str(format_summary(...))`` prints it.
    """
    from .network import as_shape
    from .validation import check_dtype
    check_spec(spec)
    in_shape = as_shape(n_inputs)
    dt = check_dtype(dtype)
    rows = layer_rows(spec, in_shape)
    facts = per_sample(spec, in_shape, dt.itemsize)
    leaves = [r for r in rows if not r["block"]]
    out_rows = [{"path": r["path"], "type": r["type"], "depth": r["depth"], "output_shape": r["output_shape"],
                 "params": r["params"], "trainable_params": r["trainable_params"], "macs": r["macs"],
                 "activation_bytes": r["output"] * dt.itemsize, "block": r["block"]} for r in rows]
    params = sum(r["params"] for r in leaves)
    totals = {"params": params, "trainable_params": sum(r["trainable_params"] for r in leaves),
              "param_bytes": params * dt.itemsize, "macs": sum(r["macs"] for r in leaves),
              "inference_bytes": facts["inference"], "training_bytes": facts["training"],
              "memory_budget": memory_budget()}
    return {"input_shape": in_shape, "dtype": dt.name, "rows": out_rows, "totals": totals}


def format_summary(table: Dict[str, Any]) -> str:
    """The text form of :func:`summary`: one line per layer (inner layers indented), then the totals."""
    head = ("layer", "type", "output shape", "params", "MACs", "activations")
    lines = [[("  " * r["depth"]) + r["path"], r["type"], "(" + ", ".join(map(str, r["output_shape"])) + ")",
              f"{r['params']:,}", f"{r['macs']:,}", format_bytes(r["activation_bytes"])] for r in table["rows"]]
    widths = [max(len(h), *(len(line[c]) for line in lines)) for c, h in enumerate(head)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if k < 3 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))
    rule = "-" * len(fmt(head))
    t = table["totals"]
    out = [f"input shape ({', '.join(map(str, table['input_shape']))}), {table['dtype']}", rule, fmt(head), rule]
    out += [fmt(line) for line in lines]
    out += [rule,
            f"params: {t['params']:,} ({format_bytes(t['param_bytes'])}), trainable {t['trainable_params']:,}",
            f"multiply-adds per sample: {t['macs']:,}",
            f"memory per sample: inference {format_bytes(t['inference_bytes'])}, "
            f"training {format_bytes(t['training_bytes'])} (budget {format_bytes(t['memory_budget'])})"]
    return "\n".join(out)
