#!/usr/bin/env python
"""Benchmark: funcnn against JAX (jit + optax), PyTorch (CPU) and scikit-learn on Fashion-MNIST.

The same 784-256-128-10 ReLU network, softmax cross-entropy, Adam (lr 1e-3, betas
0.9/0.999, eps 1e-8), batch 128, minibatches from a fresh permutation every epoch, no L2
(``alpha=0`` for scikit-learn, whose default would be 1e-4), float32 except scikit-learn,
each framework with its own default initialisation and as its users run it:

* funcnn — only its public API: ``funcnn.init_params``, ``funcnn.train(...,
  optimizer=funcnn.optimizers.adam(1e-3), batch_size=128)``, ``funcnn.predict``;
* JAX — a pure-function MLP (He-normal weights, zero biases: JAX has no default), one
  ``jax.jit``-compiled training step (gather the minibatch from the device-resident data,
  ``value_and_grad``, ``optax.adam`` update; params and optimizer state donated) per
  minibatch, ``optax.softmax_cross_entropy_with_integer_labels``; the compile happens in the
  warm-up epoch, and every timed epoch ends with ``jax.block_until_ready``;
* PyTorch — ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU``, ``torch.optim.Adam``,
  ``F.cross_entropy``; minibatches gathered from ``torch.randperm``;
  ``torch.get_num_threads()`` threads (the default: the machine's cores);
* scikit-learn — ``MLPClassifier(hidden_layer_sizes=(256, 128), solver="adam",
  learning_rate_init=1e-3, batch_size=128, alpha=0)``, one ``partial_fit`` per epoch (which
  keeps Adam's state, unlike ``fit`` with ``warm_start``), float64 inputs.

Every framework computes its training loss each minibatch (funcnn, JAX and PyTorch also
count correct predictions, as funcnn's history does). A framework that is not installed is
skipped with a note; ``--frameworks`` picks a subset.

How it measures
* Each framework runs in its own subprocess (this script with ``--worker``), so peak memory
  (``ru_maxrss``, and ``VmHWM`` reset once the data and model are set up) is its own. The
  processes stay alive and the parent runs them one epoch at a time, rotating the order
  every round, so load changes on the machine hit all of them alike; each timed command waits
  0.3 s first (SETTLE_SECONDS), so that threads still spinning after the previous process's job
  (OpenMP, OpenBLAS) do not take its CPU. The first epoch is a
  warm-up (setup, JIT compiles); the tables give the median of the others, and every ratio
  is the median of per-round ratios (each pair ran back to back) with its range.
* The data is loaded once by the parent (``funcnn.datasets.load_mnist`` from
  /usr/share/datasets/fashion-mnist, or ``--data-dir``) and handed to the workers as .npy
  files, so every framework trains on the same arrays. ``--quick`` falls back to synthetic
  data of the same shape if the files are missing (``--synthetic`` forces it).
* BLAS kernels: some machines set ``OPENBLAS_CORETYPE`` (e.g. Haswell) and
  ``OPENBLAS_L2_SIZE``, which makes OpenBLAS use slower kernels than the CPU has (about half
  NumPy's float32 GEMM speed on an AVX-512 CPU). The workers' environment has both removed —
  the parent's own environment is left alone — and each worker reports what threadpoolctl
  sees (``internal_api``, ``architecture``, ``num_threads``, ``version``). ``--forced-kernels``
  keeps the environment as it is, for comparison.
* GEMM roofline: one more worker runs, each round, every matrix product of one training
  epoch (forward, weight gradients, input gradients; the shapes and memory layouts of
  funcnn's loop) shape by shape in tight loops with NumPy: the time the GEMMs alone need at
  this machine's measured float32 throughput. That time ÷ a framework's epoch time is the
  fraction of the roofline its training loop reaches (JAX and PyTorch use their own GEMM
  kernels, so theirs can exceed 100 %).
* Inference: ``predict`` on the 10 000 test images (PyTorch: ``eval()`` and ``no_grad``;
  JAX: a jitted apply + argmax, compiled before timing), alternated between the processes;
  median. Predict latency: one row, timed call by call (``--latency-calls``, default 2000,
  in 4 alternated rounds after warm-up calls), min and median.
* ``--optimizer-share``: funcnn's private hot loop is not instrumented any more (the old
  in-loop split wrapped ``funcnn.optimizers._update_inplace``). Instead one more funcnn
  worker trains with ``funcnn.sgd(0.0)`` — a near no-op step (two passes over the
  parameters; the weights stay put, the matrix products cost the same) — and Adam's share
  of the epoch is estimated as (Adam epoch − SGD(lr 0) epoch) ÷ Adam epoch, per round.
* ``--compare PATH``: one more funcnn worker imports funcnn from another source tree
  (``PYTHONPATH=PATH``, e.g. ``git worktree add /tmp/old <commit>``), alternating with this
  tree's; both columns are labelled by ``git rev-parse --short HEAD`` and new ÷ old is given.
* ``--scaling``: epoch times of funcnn, JAX and PyTorch (and the old funcnn with
  ``--compare``) at batch 32/128/512 (hidden 256-128) and hidden 64-32 ... 1024-512
  (batch 128), plus a digits-size network (64-128-64-10, batch 32, on scikit-learn's 1797
  digits replicated 20 times, in µs per step), with the ratios and the % of the GEMM roofline.

The network is not hard-wired into the workers: a task (``TASKS``) gives the data set, the
input shape (images are NHWC), a framework-neutral layer list (``["dense", 256]``,
``["relu"]``, ``["conv2d", filters, kernel]``, ``["maxpool", size]``, ``["flatten"]``),
the batch size and the epochs, and every worker builds its model from that. A framework
that lacks one of the layers (scikit-learn only does MLPs) is skipped for that task with a
note (funcnn builds ``conv2d(filters, kernel, padding="same")``, ``max_pool(size)``,
``flatten()``; the GEMM roofline is computed for dense networks only). ``--task fashion-cnn`` runs the small CNN task.

What it prints
* the main table, one column per framework (and per extra funcnn worker): seconds per epoch
  (median, range), the warm-up epoch, funcnn time ÷ this, % of the GEMM roofline, test
  accuracy, predict time on the test set, RSS before training / peak while training /
  training's own / whole process, dtype, runtime threads, BLAS as threadpoolctl reports it;
  then the ratios line, before/after (``--compare``), optimizer share (``--optimizer-share``),
  the GEMM roofline with the throughput per shape, the predict-latency table, the targets;
* ``--latency``: only the predict-latency table, on freshly initialised networks;
* ``--scaling``: one row per network / batch size (funcnn, JAX, PyTorch, ratios, roofline).
  Each row starts fresh workers and runs 3 epochs (2 with ``--quick``); on 2 idle cores the
  whole table should take about 4 minutes (an estimate from idle epoch times; with other
  jobs keeping the load average at 4-7 it took 15 minutes, and such numbers mean little).

Usage::

    python scripts/benchmark.py                  # 5 epochs (1 warm-up + 4 timed), + latency
    python scripts/benchmark.py --quick          # smoke run: 10 000 samples, 2 epochs
    python scripts/benchmark.py --latency        # the predict-latency table only (untrained nets)
    python scripts/benchmark.py --scaling        # plus the scaling table (--scaling-only: just it)
    python scripts/benchmark.py --scaling-only --quick           # the scaling table as a smoke run
    git worktree add /tmp/old HEAD~3 && python scripts/benchmark.py --compare /tmp/old  # before/after
    python scripts/benchmark.py --optimizer-share                # + funcnn with SGD(lr 0)
    python scripts/benchmark.py --forced-kernels # keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
    python scripts/benchmark.py --markdown --json run.json       # Markdown tables; raw timings
    python scripts/benchmark.py --task fashion-cnn               # the CNN task (funcnn, JAX, PyTorch)
    python scripts/benchmark.py --task fashion-cnn32             # cnn_mnist.py's CNN without BN/dropout
    python scripts/benchmark.py --quick --frameworks funcnn --synthetic   # seconds, NumPy only
    python scripts/benchmark.py --task char-transformer          # funcnn vs PyTorch vs JAX-jit steps

``--task char-transformer`` is a table of its own: scripts/char_transformer.py's causal
transformer (scripts/specs/char_transformer.json: 2 pre-norm blocks, d 64, 4 heads, context 64,
byte vocabulary) on windows of Debian's fortunes (``--corpus``), batch 32, Adam. Each framework
(funcnn's ``value_and_grad`` + ``update``; PyTorch's modules and ``torch.optim.Adam``; JAX-jit +
optax) runs ``char_transformer.py --bench`` in a process of its own, one after the other, the
order rotated every round (``--rounds``); each times ``--steps`` steps after 3 warm-up steps
(JAX's compile among them) on the same windows, with one BLAS / torch thread (char_transformer.py's
default ``--threads 1``; XLA's own thread pool is left as it is). The table gives the median step per framework
and the median of the per-round ratios to funcnn, with their range.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROTO = "@@bench "  # prefix of protocol lines on a worker's stdout; anything else is ignored

FRAMEWORKS = ("funcnn", "jax", "torch", "sklearn")
LABELS = {"funcnn": "funcnn", "jax": "JAX-jit + optax", "torch": "PyTorch (CPU)",
          "sklearn": "scikit-learn MLPClassifier"}
REQUIRES = {"funcnn": ("numpy",), "jax": ("jax", "optax"), "torch": ("torch",), "sklearn": ("sklearn",)}
FORCED_KERNEL_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
LOSS = "softmax_cross_entropy"
LR = 1e-3


# =========================================================================== tasks
#
# A task is everything a worker needs to build and train its model; the parent turns it
# into a JSON config (plus the path of the .npy data) and every worker builds from that.
# Layers are framework-neutral lists: ["dense", units], ["relu"], ["conv2d", filters, kernel]
# (stride 1, "same" padding) or ["conv2d", filters, kernel, stride, padding] (an int padding on
# every side), ["maxpool", size], ["flatten"], ["batchnorm"], ["globalavgpool"] and
# ["residual", body layers, shortcut layers] (no shortcut layers: the identity). Inputs keep input_shape
# (images NHWC: (28, 28, 1)); a network that starts with a dense layer sees them flattened.

def mlp_layers(hidden, n_out=10):
    layers = []
    for w in hidden:
        layers += [["dense", int(w)], ["relu"]]
    return layers + [["dense", n_out]]


TASKS = {
    "fashion-mlp": {"data": "fashion-mnist", "input_shape": [784], "hidden": [256, 128], "batch": 128,
                    "epochs": 5, "title": "Fashion-MNIST, {net} ReLU"},
    "digits-mlp": {"data": "digits", "input_shape": [64], "hidden": [128, 64], "batch": 32, "epochs": 3,
                   "per_step": True, "title": "digits ×20, {net} ReLU"},
    "fashion-cnn": {"data": "fashion-mnist", "input_shape": [28, 28, 1], "batch": 128, "epochs": 3,
                    "layers": [["conv2d", 16, 3], ["relu"], ["maxpool", 2], ["conv2d", 32, 3], ["relu"],
                               ["maxpool", 2], ["flatten"], ["dense", 64], ["relu"], ["dense", 10]],
                    "title": "Fashion-MNIST 28x28x1 (NHWC), conv16-pool-conv32-pool-64-10 CNN"},
    # scripts/cnn_mnist.py's network without its batch norm and dropout layers
    # a table of its own (sequence_report): scripts/char_transformer.py --bench, one process per framework
    "char-transformer": {"sequence": True, "frameworks": ("funcnn", "torch", "jax"), "steps": 40, "rounds": 3,
                         "title": "char-level transformer (scripts/specs/char_transformer.json), batch 32 x 64"},
    "fashion-cnn32": {"data": "fashion-mnist", "input_shape": [28, 28, 1], "batch": 128, "epochs": 3,
                      "layers": [["conv2d", 32, 3], ["relu"], ["maxpool", 2], ["conv2d", 64, 3], ["relu"],
                                 ["maxpool", 2], ["flatten"], ["dense", 128], ["relu"], ["dense", 10]],
                      "title": "Fashion-MNIST 28x28x1 (NHWC), conv32-pool-conv64-pool-128-10 CNN"},
    # scripts/resnet_fashion.py's ResNet (tests/test_scripts.py checks it is the same network)
    "fashion-resnet": {"data": "fashion-mnist", "input_shape": [28, 28, 1], "batch": 128, "epochs": 3,
                       "layers": [["conv2d", 32, 3, 1, 1], ["batchnorm"], ["relu"], ["maxpool", 2],
                                  ["residual", [["conv2d", 32, 3, 1, 1], ["batchnorm"], ["relu"],
                                                ["conv2d", 32, 3, 1, 1], ["batchnorm"]], []], ["relu"],
                                  ["residual", [["conv2d", 64, 3, 2, 1], ["batchnorm"], ["relu"],
                                                ["conv2d", 64, 3, 1, 1], ["batchnorm"]],
                                   [["conv2d", 64, 1, 2, 0], ["batchnorm"]]], ["relu"],
                                  ["residual", [["conv2d", 64, 3, 1, 1], ["batchnorm"], ["relu"],
                                                ["conv2d", 64, 3, 1, 1], ["batchnorm"]], []], ["relu"],
                                  ["globalavgpool"], ["dense", 10]],
                       "title": "Fashion-MNIST 28x28x1 (NHWC), ResNet: conv32-pool, 3 residual blocks "
                                "(32, 64 /2 with a 1x1 projection, 64), BN, global average pool",
                       "torch_goal": 1.0, "torch_bound": 1.5},
}


def make_task(name, **overrides):
    """The full description of task ``name`` with overrides (batch, hidden, epochs, n_train, ...)."""
    task = {**TASKS[name], **overrides, "name": name}
    if "layers" not in TASKS[name] or "hidden" in overrides:
        task["layers"] = mlp_layers(task["hidden"])
    return task


def net_name(task):
    if all(kind in ("dense", "relu") for kind, *_ in task["layers"]):
        n_in = math.prod(task["input_shape"])
        return "-".join(str(x) for x in [n_in] + [a[0] for kind, *a in task["layers"] if kind == "dense"])
    return task["name"]


def dense_sizes(layers, input_shape):
    """[n_in, units, units, ...] of an MLP (dense/relu layers only), else None."""
    if any(kind not in ("dense", "relu") for kind, *_ in layers):
        return None
    return [math.prod(input_shape)] + [a[0] for kind, *a in layers if kind == "dense"]


class Unsupported(Exception):
    """This framework cannot build the task's network (a layer it does not have)."""


# =========================================================================== worker plumbing
#
# A worker is this script started with --worker FRAMEWORK --config JSON. It loads the data,
# builds its model, prints {"ready": ...} (or {"unsupported": why} and exits) and then
# answers commands read from stdin, one line per command: "epoch" (train one epoch, reply its
# seconds), "predict" (time one prediction over the test set), "latency N" (time N one-row
# predictions call by call), "finish" (reply accuracy, peak memory; exit).

def _send(obj) -> None:
    sys.stdout.write(PROTO + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _recv() -> str:
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)  # the parent went away
    return line.strip()


def _expect_epoch() -> None:
    cmd = _recv()
    if cmd != "epoch":
        raise SystemExit(f"worker: expected 'epoch', got {cmd!r}")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM), so that it measures from here on (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def blas_info():
    """What threadpoolctl sees of the BLAS libraries loaded in this process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{k: i.get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
            for i in threadpool_info() if i.get("user_api") == "blas"]


def _ready(**info) -> None:
    """Tell the parent this worker is set up; from here on VmHWM is the training's own peak."""
    rss = _status_mb("VmRSS")
    _send({"ready": True, "rss_mb": rss, "hwm_reset": _reset_peak(), "blas": blas_info(),
           "kernel_env": {v: os.environ.get(v) for v in FORCED_KERNEL_VARS}, **info})


def _load_arrays(cfg):
    import numpy as np
    d = cfg["data_path"]
    return tuple(np.load(os.path.join(d, f"{name}.npy")) for name in ("X", "y", "Xt", "yt"))


def _flat_if_dense(X, layers):
    return X.reshape(X.shape[0], -1) if layers[0][0] == "dense" and X.ndim > 2 else X


def _serve(run_epoch, predict, X1, Xt, yt, finish_info=None) -> None:
    """The command loop of a worker (funcnn's enters it after training)."""
    import numpy as np
    train_peak = None
    warm = False
    while True:
        cmd, _, arg = _recv().partition(" ")
        if cmd in ("predict", "latency", "finish") and train_peak is None:
            train_peak = _status_mb("VmHWM")
        if cmd == "epoch":
            t0 = time.perf_counter()
            extra = run_epoch() or {}
            _send({"epoch_time": time.perf_counter() - t0, **extra})  # extra may set its own epoch_time
        elif cmd == "predict":
            if not warm:  # the first call of a shape may compile (JAX) or allocate: not timed
                predict(Xt)
                warm = True
            t0 = time.perf_counter()
            predict(Xt)
            _send({"predict_time": time.perf_counter() - t0})
        elif cmd == "latency":
            n = int(arg)
            for _ in range(max(20, n // 10)):
                predict(X1)
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                predict(X1)
                times.append(time.perf_counter() - t0)
            _send({"latency": times})
        elif cmd == "finish":
            info = {"accuracy": float(np.mean(predict(Xt) == yt))} if predict else {}
            info.update(finish_info() if finish_info else {})
            _send({**info, "peak_mb": _peak_mb(), "train_peak_mb": train_peak})
            return
        else:
            raise SystemExit(f"worker: unknown command {cmd!r}")


# =========================================================================== workers

def build_funcnn(F, layers):
    """funcnn spec from the neutral layer list, with public constructors only."""
    spec = []
    for kind, *args in layers:
        if kind == "dense":
            spec.append(F.dense(args[0]))
        elif kind == "relu":
            spec.append(F.relu())
        elif kind == "conv2d" and len(args) > 2:
            spec.append(F.conv2d(args[0], args[1], stride=args[2], padding=args[3]))
        elif kind == "residual":
            block = {"type": "residual", "body": build_funcnn(F, args[0])}
            if args[1]:
                block["shortcut"] = build_funcnn(F, args[1])
            spec.append(block)
        elif kind == "globalavgpool":
            spec.append({"type": "global_pool", "mode": "mean"})
        else:  # image layers (an older tree, --compare, may lack them)
            name, kwargs = {"conv2d": ("conv2d", {"padding": "same"}), "maxpool": ("max_pool", {}),
                            "flatten": ("flatten", {}), "batchnorm": ("batch_norm", {})}.get(kind, (kind, {}))
            ctor = getattr(F, name, None)
            if ctor is None or name.startswith("_"):
                raise Unsupported(f"funcnn has no {kind} layer")
            spec.append(ctor(*args, **kwargs))
    return spec


def worker_funcnn(cfg) -> None:
    import inspect
    import numpy as np
    import funcnn as F
    src = os.path.realpath(os.path.dirname(os.path.dirname(F.__file__)))
    if cfg.get("tree") and src != os.path.realpath(cfg["tree"]):
        raise SystemExit(f"funcnn worker: imported funcnn from {src}, expected {cfg['tree']}")
    X, y, Xt, yt = _load_arrays(cfg)
    layers = cfg["layers"]
    try:
        spec = build_funcnn(F, layers)
    except Unsupported as e:
        _send({"unsupported": str(e)})
        return
    X, Xt = _flat_if_dense(X, layers), _flat_if_dense(Xt, layers)
    params = F.init_params(spec, X.shape[1] if X.ndim == 2 else X.shape[1:], seed=0)
    optimizer = F.sgd(0.0) if cfg.get("optimizer") == "sgd0" else F.optimizers.adam(cfg["lr"])
    _ready(dtype=str(params[next(iter(params))].dtype), funcnn_file=F.__file__,
           runtime=[f"funcnn {getattr(F, '__version__', '?')} ({src})"])
    epochs = cfg["epochs"]
    state = {"t0": None}

    def on_epoch(epoch, p, history):  # train calls this after each epoch: report, wait for the next "epoch"
        now = time.perf_counter()
        _send({"epoch_time": now - state["t0"], "loss": float(history["loss"][-1])})
        if epoch < epochs:
            _expect_epoch()
            state["t0"] = time.perf_counter()

    if epochs:
        kwargs = dict(loss=LOSS, optimizer=optimizer, epochs=epochs, batch_size=cfg["batch"], seed=0,
                      progress=False, callbacks=[on_epoch])
        accepted = inspect.signature(F.train).parameters  # an older tree (--compare) may lack some
        kwargs = {k: v for k, v in kwargs.items() if k in accepted or k in ("loss", "optimizer", "epochs")}
        if "callbacks" not in kwargs:
            raise SystemExit("funcnn worker: this funcnn's train() has no callbacks: cannot time epochs")
        _expect_epoch()
        state["t0"] = time.perf_counter()
        params, _ = F.train(spec, params, X, y, **kwargs)

    def predict(Xs):
        return F.predict(spec, params, Xs, loss=LOSS)
    _serve(None, predict, Xt[:1].copy(), Xt, yt)


def build_jax(layers, input_shape, key):
    """(params, apply) of the neutral layer list as pure JAX: params a list of {"W", "b"}."""
    import jax
    import jax.numpy as jnp
    he = jax.nn.initializers.he_normal()
    params, ops, shape = [], [], tuple(input_shape)
    for kind, *a in layers:
        if kind == "dense":
            key, sub = jax.random.split(key)
            n_in = math.prod(shape)
            params.append({"W": he(sub, (n_in, a[0]), jnp.float32), "b": jnp.zeros((a[0],), jnp.float32)})
            ops.append(("dense", len(params) - 1))
            shape = (a[0],)
        elif kind == "relu":
            ops.append(("relu",))
        elif kind == "conv2d":
            filters, k = a[0], a[1]
            key, sub = jax.random.split(key)
            params.append({"W": he(sub, (k, k, shape[-1], filters), jnp.float32),
                           "b": jnp.zeros((filters,), jnp.float32)})
            ops.append(("conv2d", len(params) - 1))
            shape = shape[:-1] + (filters,)
        elif kind == "maxpool":
            s = a[0]
            ops.append(("maxpool", s))
            shape = (shape[0] // s, shape[1] // s, shape[2])
        elif kind == "flatten":
            ops.append(("flatten",))
            shape = (math.prod(shape),)
        else:
            raise Unsupported(f"no JAX translation of layer {kind}")

    def apply(params, x):
        for op in ops:
            if op[0] == "dense":
                p = params[op[1]]
                x = x.reshape(x.shape[0], -1) @ p["W"] + p["b"]
            elif op[0] == "relu":
                x = jax.nn.relu(x)
            elif op[0] == "conv2d":
                p = params[op[1]]
                x = jax.lax.conv_general_dilated(x, p["W"], (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["b"]
            elif op[0] == "maxpool":
                s = op[1]
                x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, s, s, 1), (1, s, s, 1), "VALID")
            elif op[0] == "flatten":
                x = x.reshape(x.shape[0], -1)
        return x
    return params, apply


def worker_jax(cfg) -> None:
    X, y, Xt, yt = _load_arrays(cfg)
    import numpy as np
    import jax
    import jax.numpy as jnp
    import optax
    layers = cfg["layers"]
    try:
        params, apply = build_jax(layers, cfg["input_shape"], jax.random.PRNGKey(0))
    except Unsupported as e:
        _send({"unsupported": str(e)})
        return
    opt = optax.adam(cfg["lr"], b1=0.9, b2=0.999, eps=1e-8)
    opt_state = opt.init(params)

    def loss_fn(p, xb, yb):
        logits = apply(p, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), logits

    def step(p, s, Xd, yd, idx):
        xb, yb = Xd[idx], yd[idx]
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, xb, yb)
        updates, s = opt.update(grads, s, p)
        correct = jnp.sum(jnp.argmax(logits, axis=1) == yb)
        return optax.apply_updates(p, updates), s, loss, correct
    step = jax.jit(step, donate_argnums=(0, 1))  # params and Adam state are updated in place
    compiles = getattr(step, "_cache_size", lambda: None)  # how many shapes step was compiled for

    predict_jit = jax.jit(lambda p, x: jnp.argmax(apply(p, x), axis=1))
    Xd, yd = jax.device_put(X), jax.device_put(y.astype(np.int32))
    n, batch = X.shape[0], cfg["batch"]
    rng = np.random.default_rng(0)
    box = {"params": params, "state": opt_state}
    _ready(dtype=str(params[0]["W"].dtype),
           runtime=[f"jax {jax.__version__} / optax {optax.__version__}: XLA {jax.default_backend()}, "
                    f"{len(jax.devices())} device(s), {os.cpu_count()} cores"])

    def run_epoch():
        perm = rng.permutation(n).astype(np.int32)
        p, s = box["params"], box["state"]
        losses, corrects = [], []
        for i in range(0, n, batch):
            p, s, loss, correct = step(p, s, Xd, yd, perm[i:i + batch])
            losses.append(loss)
            corrects.append(correct)
        jax.block_until_ready((p, s, losses, corrects))
        box["params"], box["state"] = p, s
        return {"loss": float(np.mean(jax.device_get(losses))), "compiles": compiles()}

    def predict(Xs):
        return np.asarray(predict_jit(box["params"], Xs))
    _serve(run_epoch, predict, Xt[:1].copy(), Xt, yt)


def build_torch(torch, layers, input_shape):
    nn = torch.nn

    class NHWCtoNCHW(nn.Module):  # the data is NHWC; torch's conv layers want NCHW
        def forward(self, x):
            return x.permute(0, 3, 1, 2)

    class Residual(nn.Module):  # shortcut(x) + body(x); no shortcut layers: the identity
        def __init__(self, body, shortcut):
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    def build(layers, shape, nchw):
        mods = []
        for kind, *a in layers:
            if kind == "dense":
                if len(shape) > 1:
                    mods.append(nn.Flatten())
                mods.append(nn.Linear(math.prod(shape), a[0]))
                shape = (a[0],)
            elif kind == "relu":
                mods.append(nn.ReLU())
            elif kind == "conv2d":
                if not nchw:
                    mods.append(NHWCtoNCHW())
                    nchw = True
                if len(a) > 2:
                    stride, pad = a[2], a[3]
                    mods.append(nn.Conv2d(shape[-1], a[0], a[1], stride=stride, padding=pad))
                    side = lambda n: (n + 2 * pad - a[1]) // stride + 1  # noqa: E731
                    shape = (side(shape[0]), side(shape[1]), a[0])
                else:
                    mods.append(nn.Conv2d(shape[-1], a[0], a[1], padding="same"))
                    shape = shape[:-1] + (a[0],)
            elif kind == "maxpool":
                mods.append(nn.MaxPool2d(a[0]))
                shape = (shape[0] // a[0], shape[1] // a[0], shape[2])
            elif kind == "batchnorm":  # funcnn's momentum 0.9 is torch's 0.1
                mods.append((nn.BatchNorm2d if nchw else nn.BatchNorm1d)(shape[-1], momentum=0.1, eps=1e-5))
            elif kind == "residual":
                body, body_shape, _ = build(a[0], shape, nchw)
                short, _, _ = build(a[1], shape, nchw)
                mods.append(Residual(nn.Sequential(*body), nn.Sequential(*short)))
                shape = body_shape
            elif kind == "globalavgpool":
                mods.append(nn.AdaptiveAvgPool2d(1) if nchw else nn.Identity())
                mods.append(nn.Flatten())
                shape, nchw = (shape[-1],), False
            elif kind == "flatten":
                mods.append(nn.Flatten())
                shape = (math.prod(shape),)
            else:
                raise Unsupported(f"no PyTorch translation of layer {kind}")
        return mods, shape, nchw
    return nn.Sequential(*build(layers, tuple(input_shape), False)[0])


def worker_torch(cfg) -> None:
    X, y, Xt, yt = _load_arrays(cfg)
    import numpy as np
    import torch
    import torch.nn.functional as TF
    torch.manual_seed(0)
    try:
        model = build_torch(torch, cfg["layers"], cfg["input_shape"])
    except Unsupported as e:
        _send({"unsupported": str(e)})
        return
    batch = cfg["batch"]
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    Xtr, ytr = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(0)
    n = Xtr.shape[0]
    _ready(dtype=str(Xtr.dtype).replace("torch.", ""),
           runtime=[f"torch {torch.__version__}: {torch.get_num_threads()} threads, "
                    f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}"])

    def run_epoch():
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, correct, batches = 0.0, 0, 0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb, yb = Xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = TF.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            total += loss.item()
            correct += int((out.argmax(1) == yb).sum().item())
            batches += 1
        return {"loss": total / batches}

    def predict(Xs):
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(Xs)).argmax(1).numpy()
    _serve(run_epoch, predict, Xt[:1].copy(), Xt, yt)


def worker_sklearn(cfg) -> None:
    X, y, Xt, yt = _load_arrays(cfg)
    import numpy as np
    import sklearn
    from sklearn.neural_network import MLPClassifier
    sizes = dense_sizes(cfg["layers"], cfg["input_shape"])
    relu_mlp = sizes is not None and [k for k, *_ in cfg["layers"]] == ["dense", "relu"] * (len(sizes) - 2) + ["dense"]
    if not relu_mlp:
        _send({"unsupported": "MLPClassifier builds only dense ReLU networks"})
        return
    X64, Xt64 = X.reshape(len(X), -1).astype(np.float64), Xt.reshape(len(Xt), -1).astype(np.float64)
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam",
                        learning_rate_init=cfg["lr"], batch_size=cfg["batch"], alpha=0.0, shuffle=True,
                        random_state=0)
    classes = np.arange(sizes[-1])
    if not cfg["epochs"]:  # latency only: predict needs a fitted model
        clf.partial_fit(X64[:512], y[:512], classes=classes)
    _ready(dtype=str(X64.dtype), runtime=[f"sklearn {sklearn.__version__}"])

    def run_epoch():
        clf.partial_fit(X64, y, classes=classes)
        return {"loss": float(clf.loss_)}
    _serve(run_epoch, clf.predict, Xt64[:1].copy(), Xt64, yt)


def gemm_shapes(n, batch, sizes):
    """Every matrix product of one epoch of funcnn's loop: (kind, m, k, n, count, A transposed?, B transposed?).

    Per dense layer: forward ``x @ W`` (m=batch), weight gradient ``x.T @ g``, and input
    gradient ``g @ W.T`` for every layer but the first (whose input needs no gradient).
    """
    full, rest = divmod(n, batch)
    out = []
    for rows, count in ((batch, full), (rest, 1 if rest else 0)):
        if not count:
            continue
        for i in range(len(sizes) - 1):
            a, b = sizes[i], sizes[i + 1]
            out.append(("forward", rows, a, b, count, False, False))
            out.append(("weight grad", a, rows, b, count, True, False))
            if i > 0:
                out.append(("input grad", rows, b, a, count, False, True))
    return out


def worker_gemm(cfg) -> None:
    import numpy as np
    sizes = dense_sizes(cfg["layers"], cfg["input_shape"])
    if sizes is None:
        _send({"unsupported": "the GEMM roofline is defined for dense networks only"})
        return
    shapes = gemm_shapes(cfg["n_train"], cfg["batch"], sizes)
    rng = np.random.default_rng(0)
    ops = []
    for kind, m, k, n, count, ta, tb in shapes:
        A = rng.random((k, m), dtype=np.float32).T if ta else rng.random((m, k), dtype=np.float32)
        B = rng.random((n, k), dtype=np.float32).T if tb else rng.random((k, n), dtype=np.float32)
        ops.append((kind, m, k, n, count, A, B, np.empty((m, n), dtype=np.float32)))
    flops = sum(2 * m * k * n * count for _, m, k, n, count, *_ in ops)
    per_shape = {}
    _ready(flops=flops, dtype="float32", runtime=[f"numpy {np.__version__}"])

    def run_epoch():
        # This process sat idle while the others ran: wake the BLAS threads and the core up
        # first (about 0.1 s of products), then give each shape its own warm-up calls.
        t_end = time.perf_counter() + 0.1
        while time.perf_counter() < t_end:
            np.matmul(ops[0][5], ops[0][6], out=ops[0][7])
        total = 0.0
        for kind, m, k, n, count, A, B, C in ops:
            for _ in range(10):
                np.matmul(A, B, out=C)
            t0 = time.perf_counter()
            for _ in range(count):
                np.matmul(A, B, out=C)
            dt = time.perf_counter() - t0
            total += dt
            per_shape.setdefault(f"{kind} ({m}x{k})@({k}x{n})", []).append((dt, 2 * m * k * n * count))
        return {"epoch_time": total}  # the timed products only, not the warm-ups

    def info():
        table = []
        for name, runs in per_shape.items():
            dt = statistics.median(r[0] for r in runs)
            table.append((name, runs[0][1] / dt / 1e9))
        return {"per_shape_gflops": table}
    _serve(run_epoch, None, None, None, None, info)


WORKERS = {"funcnn": worker_funcnn, "jax": worker_jax, "torch": worker_torch, "sklearn": worker_sklearn,
           "gemm": worker_gemm}


# =========================================================================== data (parent)

def synthetic_classes(n, n_test, d, seed=0):
    """Ten noisy prototypes in [0, 1]^d: learnable, of a real data set's shape and dtype."""
    import numpy as np
    rng = np.random.default_rng(seed)
    protos = rng.random((10, d), dtype=np.float32)

    def make(m):
        y = rng.integers(0, 10, m)
        X = 0.5 * protos[y] + 0.5 * rng.random((m, d), dtype=np.float32)
        return X.astype(np.float32), y.astype(np.int64)
    return (*make(n), *make(n_test))


def prepare_data(task, opts, cache, notes):
    """Write the task's X, y, Xt, yt as .npy files once; return their directory."""
    import numpy as np
    n_train, kind = task["n_train"], task["data"]
    key = f"{kind}-{n_train}-{'synthetic' if opts['synthetic'] else 'real'}"
    if key in cache["paths"]:
        return cache["paths"][key]
    if kind == "fashion-mnist":
        arrays = None
        if not opts["synthetic"]:
            if REPO not in sys.path:
                sys.path.insert(0, REPO)  # this tree's funcnn, as the script's own loader
            from funcnn.datasets import load_mnist
            try:
                X, y = load_mnist(opts["data_dir"], split="train")
                Xt, yt = load_mnist(opts["data_dir"], split="test")
                arrays = (X, y, Xt, yt)
            except FileNotFoundError as e:
                if not opts["quick"]:
                    raise SystemExit(f"benchmark: {e}\n(as root: apt-get update && apt-get install -y "
                                     f"dataset-fashion-mnist; or run with --quick / --synthetic)")
                notes.append(f"Fashion-MNIST not found in {opts['data_dir']}: synthetic data of its shape "
                             f"(10 noisy prototypes) instead.")
        if arrays is None:
            if opts["synthetic"]:
                notes.append("Synthetic data of Fashion-MNIST's shape (--synthetic): accuracies mean little.")
            arrays = synthetic_classes(n_train, 10_000, 784)
        X, y, Xt, yt = arrays
        if n_train < X.shape[0]:
            keep = np.sort(np.random.default_rng(12345).permutation(X.shape[0])[:n_train])
            X, y = X[keep], y[keep]
    elif kind == "digits":
        try:
            if opts["synthetic"]:
                raise ImportError
            from sklearn.datasets import load_digits
            Xd, yd = load_digits(return_X_y=True)
            Xd = (Xd / 16).astype(np.float32)
        except ImportError:
            Xd, yd, _, _ = synthetic_classes(1797, 0, 64)
            notes.append("digits: synthetic 64-feature data of its size (scikit-learn missing or --synthetic).")
        copies = max(1, min(20, n_train // len(Xd)))
        X, y = np.tile(Xd, (copies, 1)), np.tile(yd, copies).astype(np.int64)
        Xt, yt = Xd, yd.astype(np.int64)
    else:
        raise ValueError(f"unknown data set {kind!r}")
    shape = tuple(task["input_shape"])
    X, Xt = X.reshape((len(X),) + shape), Xt.reshape((len(Xt),) + shape)
    path = os.path.join(cache["root"], key)
    os.makedirs(path)
    for name, a in (("X", X), ("y", y), ("Xt", Xt), ("yt", yt)):
        np.save(os.path.join(path, f"{name}.npy"), np.ascontiguousarray(a))
    cache["paths"][key] = path
    cache["sizes"][path] = (len(X), len(Xt))
    return path


# =========================================================================== parent: workers

def worker_env(col, forced_kernels):
    env = dict(os.environ)
    if not forced_kernels:
        for v in FORCED_KERNEL_VARS:
            env.pop(v, None)
    if col["framework"] == "funcnn":
        env["PYTHONPATH"] = os.pathsep.join([col["tree"]] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if col["framework"] == "jax":
        env.setdefault("JAX_PLATFORMS", "cpu")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def start(col, cfg, forced_kernels):
    """Start one worker: (worker, None), or (None, why) if it cannot build the task's network."""
    cfg = {**cfg, "tree": col.get("tree"), "optimizer": col.get("optimizer", "adam")}
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", col["framework"],
                             "--config", json.dumps(cfg)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                            env=worker_env(col, forced_kernels), cwd=HERE)
    try:
        ready = read(proc, col["label"])
    except BaseException:  # it died, or we are being stopped while it starts up
        if proc.poll() is None:
            proc.kill()
        raise
    if "unsupported" in ready:
        proc.wait()
        return None, ready["unsupported"]
    return {**col, "proc": proc, "ready": ready, "epochs": [], "epoch_info": [], "predict": [], "latency": []}, None


def read(proc, name):
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} worker exited with code {proc.wait()} (see its stderr above)")
        if line.startswith(PROTO):
            return json.loads(line[len(PROTO):])


def ask(w, cmd):
    w["proc"].stdin.write(cmd + "\n")
    w["proc"].stdin.flush()
    return read(w["proc"], w["label"])


def rotated(ws, r):
    """ws in round r's order: each round starts one later, so no worker always follows the same one."""
    k = r % len(ws) if ws else 0
    return ws[k:] + ws[:k]


# Pause before each timed command: a runtime's worker threads may spin on for a while after its
# job (OpenMP's spin-wait in PyTorch, 200 ms by default with Intel's runtime; OpenBLAS's threads),
# and would take CPU from the next process's timed job.
SETTLE_SECONDS = 0.3


def settled_ask(w, cmd):
    time.sleep(SETTLE_SECONDS)
    return ask(w, cmd)


def run_set(cols, task, opts, epochs, predicts, latency_calls, log, notes):
    """Start one worker per column, alternate epochs, predictions and latency rounds, finish them."""
    path = prepare_data(task, opts, opts["cache"], notes)
    cfg = {"data_path": path, "layers": task["layers"], "input_shape": task["input_shape"],
           "batch": task["batch"], "epochs": epochs, "lr": LR}
    cfg["n_train"], cfg["n_test"] = opts["cache"]["sizes"][path]
    workers = []
    try:
        for col in cols:  # one at a time, so that startups do not overlap
            w, why = start(col, cfg, opts["forced_kernels"])
            if w is None:
                notes.append(f"{col['label']} skipped for {net_name(task)}: {why}.")
            else:
                workers.append(w)
        for r in range(epochs):
            for w in rotated(workers, r):
                reply = settled_ask(w, "epoch")
                w["epochs"].append(reply["epoch_time"])
                w["epoch_info"].append(reply)
            log(f"  epoch {r + 1}/{epochs}: " + "  ".join(f"{w['id']} {w['epochs'][-1]:.3f}s" for w in workers))
        for w in workers:  # a JIT compile after the warm-up epoch would be timed: say so
            counts = [i.get("compiles") for i in w["epoch_info"]]
            if None not in counts and len(counts) > 1 and counts[-1] != counts[0]:
                notes.append(f"{w['label']} compiled again after the warm-up epoch ({counts}): its timed "
                             f"epochs include compile time.")
        served = [w for w in workers if w["framework"] != "gemm" and w["id"] != "funcnn-sgd0"]
        for r in range(predicts):
            for w in rotated(served, r):
                w["predict"].append(settled_ask(w, "predict")["predict_time"])
        rounds = (4 if latency_calls >= 4 else 1) if latency_calls else 0
        for r in range(rounds):
            for w in rotated(served, r):
                w["latency"] += settled_ask(w, f"latency {latency_calls // rounds}")["latency"]
        for w in workers:
            w["final"] = ask(w, "finish")
            w["proc"].wait()
    except BaseException:
        for w in workers:
            if w["proc"].poll() is None:
                w["proc"].kill()
        raise
    return {w["id"]: w for w in workers}, cfg


# =========================================================================== parent: numbers

def cpu_accounting():
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its waited-for children, steal)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / hz  # user nice system irq softirq
        steal = v[7] / hz if len(v) > 7 else 0.0
    except (OSError, ValueError, IndexError):
        busy = steal = float("nan")
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, steal


def foreign_load(before, after, seconds):
    """CPU cores that other processes kept busy, on average, between two cpu_accounting() calls."""
    return ((after[0] - before[0]) - (after[1] - before[1])) / seconds, (after[2] - before[2]) / seconds


def timed_epochs(w):
    return w["epochs"][1:] or w["epochs"]


def timed(w):
    """Median seconds per epoch after the warm-up epoch."""
    return statistics.median(timed_epochs(w))


def per_round(a, b):
    """a's epoch time over b's, round by round (each pair ran back to back), after the warm-up:
    (median, min, max). Robust against the machine's speed drifting between rounds."""
    xs = [x / y for x, y in zip(a["epochs"], b["epochs"])]
    xs = xs[1:] or xs
    return statistics.median(xs), min(xs), max(xs)


def fmt_ratio(r, pct=False):
    if pct:
        return f"{100 * r[0]:.0f} % ({100 * r[1]:.0f}–{100 * r[2]:.0f} %)"
    return f"{r[0]:.2f} ({r[1]:.2f}–{r[2]:.2f})"


def fmt_blas(ready):
    libs = ready.get("blas")
    if libs is None:
        return "threadpoolctl missing"
    seen = []
    for i in libs:
        s = f"{i['internal_api']} {i['version']} {i['architecture']} ×{i['num_threads']}"
        if s not in seen:
            seen.append(s)
    return "; ".join(seen) or "none loaded"


def git_label(path):
    """``abc1234`` (``abc1234+`` with uncommitted changes to tracked files), or None outside git."""
    try:
        head = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return head.stdout.strip() + ("+" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def version_of(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info():
    import numpy as np
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older numpy
        blas = "unknown"
    info = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "blas": blas}
    for key, dist in (("jax", "jax"), ("optax", "optax"), ("torch", "torch"), ("sklearn", "scikit-learn")):
        info[key] = version_of(dist)
    return info


def fmt_table(rows, markdown):
    if markdown:
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# =========================================================================== parent: columns

def columns(frameworks, args, log, notes):
    """The worker columns: this tree's funcnn (+ --compare's, + SGD(lr 0)), JAX, PyTorch, scikit-learn, GEMM."""
    cols = []
    here = git_label(REPO)
    for fw in frameworks:
        missing = [m for m in REQUIRES[fw] if importlib.util.find_spec(m) is None]
        if missing:
            notes.append(f"{LABELS[fw]} skipped: {', '.join(missing)} not installed.")
            log(f"note: {LABELS[fw]} skipped ({', '.join(missing)} not installed)")
            continue
        if fw != "funcnn":
            cols.append({"id": fw, "framework": fw, "label": LABELS[fw]})
            continue
        new_label = "funcnn" if not args.compare else f"funcnn {here or 'this tree'} (new)"
        cols.append({"id": "funcnn", "framework": "funcnn", "label": new_label, "tree": REPO})
        if args.compare:
            old = git_label(args.compare) or os.path.basename(os.path.abspath(args.compare))
            cols.append({"id": "funcnn-old", "framework": "funcnn", "label": f"funcnn {old} (old)",
                         "tree": os.path.abspath(args.compare)})
        if args.optimizer_share:
            cols.append({"id": "funcnn-sgd0", "framework": "funcnn", "label": "funcnn, SGD lr 0",
                         "tree": REPO, "optimizer": "sgd0"})
    cols.append({"id": "gemm", "framework": "gemm", "label": "GEMM roofline (NumPy)"})
    return cols


def kernel_note(args, res):
    parent = {v: os.environ.get(v) for v in FORCED_KERNEL_VARS}
    had = ", ".join(f"{k}={v}" for k, v in parent.items() if v is not None) or "neither set"
    seen = {tuple(sorted((w["ready"].get("kernel_env") or {}).items())) for w in res.values()}
    workers = "; ".join(", ".join(f"{k}={v}" for k, v in s if v is not None) or "neither set" for s in seen)
    how = ("--forced-kernels: the workers keep the environment as it is" if args.forced_kernels
           else "unset in the workers' environment (not in this process's)")
    return f"BLAS kernels: {'/'.join(FORCED_KERNEL_VARS)} {how}. This process: {had}; workers: {workers}."


# =========================================================================== parent: reports

def main_report(args, task, opts, info, log, notes, md, out):
    fws = args.frameworks
    cols = columns(fws, args, log, notes)
    epochs = task["epochs"]
    predicts = args.predicts or (3 if args.quick else 15)
    latency_calls = args.latency_calls if args.latency_calls is not None else (400 if args.quick else 2000)
    log(f"load average before: {os.getloadavg()}")
    log(f"main run: {', '.join(c['id'] for c in cols)}; {epochs} epochs of {task['n_train']} samples, "
        f"batch {task['batch']}, interleaved")
    acct0, t0 = cpu_accounting(), time.time()
    res, cfg = run_set(cols, task, opts, epochs, predicts, latency_calls, log, notes)
    foreign, steal = foreign_load(acct0, cpu_accounting(), time.time() - t0)
    log(f"load average after: {os.getloadavg()}; other processes used {foreign:.2f} cores on average, "
        f"steal {steal:.2f}")
    n_train = cfg["n_train"]
    fw = [w for w in res.values() if w["framework"] != "gemm"]
    f = res.get("funcnn")
    gemm = res.get("gemm")
    n_timed = max(1, epochs - 1)
    out["main"] = {"task": task, "foreign_load": foreign, "steal": steal, "workers": {
        w["id"]: {k: w[k] for k in ("label", "epochs", "epoch_info", "predict", "latency", "ready", "final")}
        for w in res.values()}}

    print(("## " if md else "") + f"{task['title'].format(net=net_name(task))}, Adam lr {LR:g}, batch "
          f"{task['batch']}, no L2, {n_train:,} training samples, {epochs} epochs (timings: median of the last "
          f"{n_timed})\n")
    if md:
        vers = ", ".join(f"{name} {info[k]}" for k, name in (("jax", "JAX"), ("optax", "optax"),
                                                           ("torch", "PyTorch"), ("sklearn", "scikit-learn"))
                         if info.get(k))
        print(f"{info['date']}; CPU {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
              f"NumPy {info['numpy']} ({info['blas']}); {vers}. During the run other processes kept "
              f"{foreign:.2f} CPU cores busy on average (hypervisor steal {steal:.2f}).\n")
        if foreign > 0.1:
            print("**Warning: the machine was not idle during this run; the timings are disturbed.**\n")
    elif foreign > 0.1:
        print(f"(other processes kept {foreign:.2f} CPU cores busy during the run: the timings are disturbed)\n")
    print(kernel_note(args, res) + "\n")

    rows = [["", *[w["label"] for w in fw]]]
    rows.append(["seconds / epoch (median, range)",
                 *[f"{timed(w):.3f} ({min(timed_epochs(w)):.3f}–{max(timed_epochs(w)):.3f})" for w in fw]])
    rows.append(["first epoch (warm-up: setup, JIT compile; s)", *[f"{w['epochs'][0]:.3f}" for w in fw]])
    if f:
        rows.append(["funcnn time ÷ this (median of rounds, range)",
                     *[("1" if w is f else fmt_ratio(per_round(f, w))) for w in fw]])
    if gemm:
        rows.append(["% of the GEMM roofline (median of rounds, range)",
                     *[fmt_ratio(per_round(gemm, w), pct=True) for w in fw]])
    rows.append([f"test accuracy after {epochs} epochs", *[f"{100 * w['final']['accuracy']:.2f} %" for w in fw]])
    pred = {w["id"]: statistics.median(w["predict"]) for w in fw if w["predict"]}
    if pred:
        rows.append([f"predict the {cfg['n_test']:,} test images (ms, median)",
                     *[f"{1e3 * pred[w['id']]:.1f}" if w["id"] in pred else "–" for w in fw]])
    rows.append(["RSS with data + model, before training (MB)", *[f"{w['ready']['rss_mb']:.0f}" for w in fw]])
    rows.append(["peak RSS while training (MB)", *[f"{w['final']['train_peak_mb']:.0f}" for w in fw]])
    rows.append(["… training's own (peak − before, MB)",
                 *[f"{w['final']['train_peak_mb'] - w['ready']['rss_mb']:.0f}" for w in fw]])
    rows.append(["peak RSS of the whole process (MB)", *[f"{w['final']['peak_mb']:.0f}" for w in fw]])
    rows.append(["dtype", *[w["ready"]["dtype"] for w in fw]])
    rows.append(["runtime", *["; ".join(w["ready"].get("runtime") or ["?"]) for w in fw]])
    rows.append(["BLAS (threadpoolctl: api version arch ×threads)", *[fmt_blas(w["ready"]) for w in fw]])
    print(fmt_table(rows, md))
    print()
    others = [w for w in fw if w["id"] in ("jax", "torch", "sklearn")]
    if f and (others or gemm):
        parts = [f"÷ {w['label']} {fmt_ratio(per_round(f, w))}" for w in others]
        if gemm:
            parts.append(f"GEMM roofline reached {fmt_ratio(per_round(gemm, f), pct=True)}")
        print(("**Ratios** " if md else "Ratios ") + "(funcnn's epoch time, median of per-round ratios, range; "
              f"batch {task['batch']}): " + "; ".join(parts) + ".\n")

    if f and "funcnn-old" in res:
        old = res["funcnn-old"]
        line = (f"new ÷ old ({f['label']} ÷ {old['label']}): epoch time {fmt_ratio(per_round(f, old))}")
        if pred:
            line += f"; predict {pred['funcnn'] / pred['funcnn-old']:.2f}"
        if f["latency"] and old["latency"]:
            line += f"; 1-row predict {statistics.median(f['latency']) / statistics.median(old['latency']):.2f}"
        print(("**Before/after.** " if md else "Before/after: ") + line + " (below 1: the new one is faster).\n")
    if f and "funcnn-sgd0" in res:
        s0 = res["funcnn-sgd0"]
        xs = [(a - b) / a for a, b in zip(f["epochs"], s0["epochs"])]
        xs = xs[1:] or xs
        share = (statistics.median(xs), min(xs), max(xs))
        print(("**Optimizer share.** " if md else "Optimizer share: ")
              + f"funcnn with SGD(lr 0) takes {timed(s0):.3f} s per epoch against Adam's {timed(f):.3f} s: Adam's "
              f"step is about {fmt_ratio(share, pct=True)} of funcnn's epoch (per round: (Adam − SGD lr 0) ÷ Adam; "
              f"SGD lr 0 still runs two passes over the parameters, so this slightly understates Adam).\n")

    if gemm:
        flops = gemm["ready"]["flops"]
        t_gemm = timed(gemm)
        lead = "**GEMM roofline.** " if md else "GEMM roofline: "
        text = (f"The forward + backward matrix products of one epoch are {flops / 1e9:.1f} GFLOP. Run shape by "
                f"shape in tight loops with NumPy they take {t_gemm:.3f} s ({flops / t_gemm / 1e9:.0f} GFLOP/s: this "
                f"machine's measured float32 peak for these shapes)")
        if f:
            frac = per_round(gemm, f)
            text += (f"; funcnn's training loop, at {timed(f):.3f} s per epoch, does {flops / timed(f) / 1e9:.0f} "
                     f"GFLOP/s: " + ("**" if md else "") + f"{100 * frac[0]:.0f} %" + ("**" if md else "")
                     + f" of the roofline (median of the rounds' GEMM time ÷ funcnn time; range "
                     f"{100 * frac[1]:.0f}–{100 * frac[2]:.0f} %)")
        print(lead + text + ".")
        per_shape = gemm["final"]["per_shape_gflops"]
        print(("\n" if md else "") + "Measured float32 GEMM throughput per shape: "
              + "; ".join(f"{name} {g:.0f} GFLOP/s" for name, g in per_shape) + ".")
        print()

    if any(w["latency"] for w in fw):
        latency_table(fw, pred, md, f"{max(len(w['latency']) for w in fw)} one-row calls per framework in 4 "
                      "alternated rounds, "
                      f"after warm-up calls; {cfg['n_test']:,} rows: median of {predicts}", cfg["n_test"])

    checks = []
    ratios = {w["id"]: per_round(f, w) for w in fw if f and w is not f}
    if f and "torch" in res:
        bound = task.get("torch_bound", 0.70)
        checks.append((f"epoch time ≤ {bound:.2f} × PyTorch's", ratios["torch"][0], bound, "≤"))
        if "torch_goal" in task:
            checks.append((f"epoch time ≤ {task['torch_goal']:.2f} × PyTorch's (the goal)", ratios["torch"][0],
                           task["torch_goal"], "≤"))
    if f and "sklearn" in res:
        checks.append(("epoch time ≤ 0.40 × scikit-learn's", ratios["sklearn"][0], 0.40, "≤"))
    if f and gemm:
        checks.append(("≥ 60 % of the GEMM roofline", per_round(gemm, f)[0], 0.60, "≥"))
    if f and "torch" in pred and "funcnn" in pred:
        checks.append(("predict at least as fast as PyTorch (time ratio ≤ 1)", pred["funcnn"] / pred["torch"],
                       1.0, "≤"))
    accs = {w["id"]: 100 * w["final"]["accuracy"] for w in fw if w["id"] in ("funcnn", "jax", "torch", "sklearn")}
    if f and len(accs) > 1:
        checks.append(("test accuracies within 1 point of each other", max(accs.values()) - min(accs.values()),
                       1.0, "≤"))
    if checks:
        print(("**Targets**" if md else "Targets:")
              + (" (a --quick smoke run: a subset and 2 epochs, so these say little)" if args.quick else "")
              + ("\n" if md else ""))
        for name, value, bound, op in checks:
            ok = value <= bound if op == "≤" else value >= bound
            print(f"{'- ' if md else '  '}{'met' if ok else 'NOT met'}: {name}: {value:.2f} (bound {bound})")
        print()


def latency_table(fw, pred, md, how, n_test=10_000):
    f = next((w for w in fw if w["id"] == "funcnn"), None)
    med = {w["id"]: statistics.median(w["latency"]) for w in fw if w["latency"]}
    rows = [["predict latency", "1 row: min (µs)", "1 row: median (µs)", f"{n_test:,} rows: median (ms)",
             "funcnn ÷ this (1 row)", f"funcnn ÷ this ({n_test:,} rows)"]]
    for w in fw:
        if not w["latency"]:
            continue
        one = f"{med['funcnn'] / med[w['id']]:.2f}" if f and f["latency"] else "–"
        big = (f"{pred['funcnn'] / pred[w['id']]:.2f}" if f and "funcnn" in pred and w["id"] in pred else "–")
        rows.append([w["label"], f"{1e6 * min(w['latency']):.0f}", f"{1e6 * med[w['id']]:.0f}",
                     f"{1e3 * pred[w['id']]:.1f}" if w["id"] in pred else "–", one, big])
    print(("**Predict latency**" if md else "Predict latency") + f" ({how}; funcnn: "
          f"funcnn.predict(spec, params, X, loss=...), JAX: jitted apply + argmax, PyTorch: eval() + no_grad; "
          f"each returns the labels as a NumPy array):" + ("\n" if md else ""))
    print(fmt_table(rows, md))
    print()


def latency_report(args, task, opts, log, notes, md, out):
    """--latency: untrained networks (init params), predict timings only."""
    cols = [c for c in columns(args.frameworks, args, log, notes) if c["framework"] != "gemm"]
    calls = args.latency_calls if args.latency_calls is not None else (400 if args.quick else 2000)
    predicts = args.predicts or (5 if args.quick else 15)
    res, cfg = run_set(cols, {**task, "n_train": min(task["n_train"], 2_000)}, opts, 0, predicts, calls, log, notes)
    fw = list(res.values())
    out["latency"] = {w["id"]: {"label": w["label"], "latency": w["latency"], "predict": w["predict"],
                                "ready": w["ready"]} for w in fw}
    print(("## " if md else "") + f"Predict latency, {task['title'].format(net=net_name(task))} "
          f"(untrained: freshly initialised params)\n")
    print(kernel_note(args, res) + "\n")
    pred = {w["id"]: statistics.median(w["predict"]) for w in fw if w["predict"]}
    latency_table(fw, pred, md, f"{max([len(w['latency']) for w in fw] or [0])} one-row calls per framework in 4 "
                  f"alternated rounds after warm-up calls; {cfg['n_test']:,} rows: median of {predicts}",
                  cfg["n_test"])


SCALING_ROWS = ([("fashion-mlp", {"batch": b}) for b in (32, 128, 512)]
                + [("fashion-mlp", {"hidden": [w, w // 2]}) for w in (64, 128, 512, 1024)]
                + [("digits-mlp", {})])


def scaling_report(args, opts, log, notes, md, out):
    epochs = args.scaling_epochs or (2 if args.quick else 3)
    fws = [fw for fw in args.frameworks if fw in ("funcnn", "jax", "torch")]
    cols = columns(fws, args, log, notes)
    ids = [c["id"] for c in cols]
    have = lambda i: i in ids  # noqa: E731
    head = ["network", "batch", "funcnn"]
    head += ["funcnn old", "new ÷ old"] if have("funcnn-old") else []
    head += ["JAX"] if have("jax") else []
    head += ["PyTorch"] if have("torch") else []
    head += ["funcnn ÷ JAX"] if have("jax") else []
    head += ["funcnn ÷ PyTorch"] if have("torch") else []
    head += ["Adam share (funcnn)"] if have("funcnn-sgd0") else []
    head += ["% of GEMM roofline"]
    rows = [head]
    out["scaling"] = []
    n_train = args.n_train or (10_000 if args.quick else 60_000)
    digits_rows = None
    for name, over in SCALING_ROWS:
        task = make_task(name, n_train=n_train, **over)
        log(f"scaling: {net_name(task)}, batch {task['batch']}")
        res, cfg = run_set(cols, task, opts, epochs, 0, 0, log, notes)
        steps = math.ceil(cfg["n_train"] / task["batch"])
        if name == "digits-mlp":
            digits_rows = cfg["n_train"]
        per_step = task.get("per_step")
        t = lambda i: (f"{1e6 * timed(res[i]) / steps:.0f} µs/step" if per_step else f"{timed(res[i]):.3f}")  # noqa
        r = lambda a, b: f"{per_round(res[a], res[b])[0]:.2f}" if a in res and b in res else "–"  # noqa: E731
        row = [net_name(task) + (" (digits ×20)" if name == "digits-mlp" else ""), str(task["batch"]),
               t("funcnn") if "funcnn" in res else "–"]
        if have("funcnn-old"):
            row += [t("funcnn-old") if "funcnn-old" in res else "–", r("funcnn", "funcnn-old")]
        row += [t("jax") if "jax" in res else "–"] if have("jax") else []
        row += [t("torch") if "torch" in res else "–"] if have("torch") else []
        row += [r("funcnn", "jax")] if have("jax") else []
        row += [r("funcnn", "torch")] if have("torch") else []
        if have("funcnn-sgd0"):
            if "funcnn" in res and "funcnn-sgd0" in res:
                xs = [(a - b) / a for a, b in zip(res["funcnn"]["epochs"], res["funcnn-sgd0"]["epochs"])]
                row += [f"{100 * statistics.median(xs[1:] or xs):.0f} %"]
            else:
                row += ["–"]
        row += [f"{100 * per_round(res['gemm'], res['funcnn'])[0]:.0f} %" if "gemm" in res and "funcnn" in res
                else "–"]
        rows.append(row)
        out["scaling"].append({"task": task, "n_train": cfg["n_train"], "steps": steps,
                               "epochs": {i: w["epochs"] for i, w in res.items()}})
    print(("## " if md else "") + f"Scaling ({n_train:,} Fashion-MNIST samples, Adam, {epochs} epochs per point, "
          f"median after the first; s/epoch unless marked)\n")
    print(fmt_table(rows, md))
    print("\nRatios are medians of per-round ratios (funcnn's epoch ÷ the other's, run back to back). *% of GEMM "
          "roofline*: the same epoch's matrix products run shape by shape in tight loops with NumPy, ÷ funcnn's "
          "epoch time." + (" The digits row trains 64-128-64-10 on scikit-learn's 1797 digits replicated to "
                           f"{digits_rows:,} rows (µs per minibatch step)." if digits_rows else "")
          + (" *Adam share*: (Adam epoch − SGD(lr 0) epoch) ÷ Adam epoch, funcnn." if have("funcnn-sgd0") else ""))
    print()


# =========================================================================== main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 10 000 training samples, 2 epochs, fewer calls (synthetic data if missing)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per framework, the first a warm-up (default 5)")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                    help=f"comma-separated subset of {','.join(FRAMEWORKS)} (default: all; the GEMM roofline "
                         "worker always runs)")
    ap.add_argument("--no-sklearn", action="store_true",
                    help="skip scikit-learn (same as leaving it out of --frameworks)")
    ap.add_argument("--task", default="fashion-mlp", choices=sorted(TASKS), help="the main table's task")
    ap.add_argument("--latency", action="store_true",
                    help="only the predict-latency table (untrained networks; it is also in the default report)")
    ap.add_argument("--latency-calls", type=int, default=None,
                    help="one-row predict calls per framework (default 2000; --quick 400; 0: no latency table)")
    ap.add_argument("--predicts", type=int, default=None,
                    help="timed test-set (10 000 rows) predictions per framework (default 15; --quick 3)")
    ap.add_argument("--scaling", action="store_true", help="also the batch-size / width scaling table")
    ap.add_argument("--scaling-only", action="store_true", help="only the scaling table")
    ap.add_argument("--scaling-epochs", type=int, default=None, help="epochs per scaling point (default 3; --quick 2)")
    ap.add_argument("--compare", metavar="PATH",
                    help="another funcnn source tree (e.g. a git worktree of an older commit): run it too, "
                         "alternating with this one, and report new ÷ old")
    ap.add_argument("--optimizer-share", action="store_true",
                    help="also run funcnn with SGD(lr 0) to estimate Adam's share of the epoch")
    ap.add_argument("--forced-kernels", action="store_true",
                    help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the workers' environment "
                         "(default: unset there)")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX directory")
    ap.add_argument("--synthetic", action="store_true",
                    help="synthetic data of the same shapes instead of the real sets")
    ap.add_argument("--n-train", type=int, default=None, help="training samples (default 60 000; --quick 10 000)")
    ap.add_argument("--markdown", action="store_true", help="print the tables in Markdown, with the machine")
    ap.add_argument("--json", metavar="PATH", help="also write every raw timing to PATH")
    ap.add_argument("--corpus", default="/usr/share/games/fortunes",
                    help="--task char-transformer: the text (default: Debian's fortunes)")
    ap.add_argument("--rounds", type=int, default=None, help="--task char-transformer: rounds (default 3)")
    ap.add_argument("--steps", type=int, default=None, help="--task char-transformer: timed steps (default 40)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return args
    fws = [s.strip() for s in args.frameworks.split(",") if s.strip()]
    bad = [s for s in fws if s not in FRAMEWORKS]
    if bad:
        ap.error(f"--frameworks: unknown {', '.join(bad)} (choose from {', '.join(FRAMEWORKS)})")
    if args.no_sklearn:
        fws = [s for s in fws if s != "sklearn"]
    args.frameworks = [s for s in FRAMEWORKS if s in fws]  # fixed column order
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if args.compare and not os.path.isfile(os.path.join(args.compare, "funcnn", "__init__.py")):
        ap.error(f"--compare: {args.compare} has no funcnn/__init__.py")
    if args.compare and os.path.realpath(args.compare) == os.path.realpath(REPO):
        ap.error("--compare: that is this tree")
    return args


def sequence_report(args) -> int:
    """``--task char-transformer``: median step times of funcnn, PyTorch and JAX, one process each."""
    task = TASKS[args.task]
    steps = args.steps or (6 if args.quick else task["steps"])
    rounds = args.rounds or (1 if args.quick else task["rounds"])
    fws = [fw for fw in task["frameworks"] if fw in args.frameworks]
    script = os.path.join(HERE, "char_transformer.py")
    times = {fw: [] for fw in fws}
    ratios = {fw: [] for fw in fws}
    notes = []
    for r in range(rounds):
        order = fws[r % len(fws):] + fws[:r % len(fws)]
        this = {}
        for fw in order:
            need = REQUIRES["jax" if fw == "jax" else fw]
            if any(importlib.util.find_spec(m) is None for m in need):
                notes.append(f"{fw}: not installed, skipped")
                continue
            cmd = [sys.executable, script, args.corpus, "--bench", fw, "--steps", str(steps + 3)]
            if args.quick:
                cmd.append("--quick")
            time.sleep(SETTLE_SECONDS)
            proc = subprocess.run(cmd, env=worker_env({"framework": fw, "tree": REPO}, args.forced_kernels),
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"char_transformer.py --bench {fw} failed:\n{proc.stderr[-2000:]}")
            step = statistics.median(json.loads(proc.stdout.strip().splitlines()[-1])["step_seconds"])
            times[fw].append(step)
            this[fw] = step
            print(f"round {r + 1}/{rounds}: {fw} {1e3 * step:.1f} ms/step", file=sys.stderr, flush=True)
        if "funcnn" in this:
            for fw in this:
                ratios[fw].append(this["funcnn"] / this[fw])
    print(f"{task['title']}: median ms per training step ({steps} timed steps x {rounds} rounds, "
          f"one process per framework; {os.getloadavg()[0]:.2f} load)")
    print(f"{'framework':<16}{'ms/step':>10}{'funcnn / this':>16}  range")
    for fw in fws:
        if not times[fw]:
            continue
        rs = ratios[fw]
        rng_txt = f"{min(rs):.2f}-{max(rs):.2f}" if rs else "—"
        print(f"{LABELS[fw]:<16}{1e3 * statistics.median(times[fw]):>10.1f}"
              f"{(statistics.median(rs) if rs else float('nan')):>16.2f}  {rng_txt}")
    for n in dict.fromkeys(notes):
        print("  " + n)
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        WORKERS[args.worker](json.loads(args.config))
        return 0
    # killed with SIGTERM: unwind like Ctrl-C, so the workers are stopped and the data files removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if TASKS[args.task].get("sequence"):
        return sequence_report(args)
    md = args.markdown
    log = (lambda s: print(s, file=sys.stderr, flush=True))
    n_train = args.n_train or (10_000 if args.quick else 60_000)
    task = make_task(args.task, n_train=n_train)
    if args.epochs:
        task["epochs"] = args.epochs
    elif args.quick:
        task["epochs"] = 2
    notes, out = [], {"args": {k: v for k, v in vars(args).items() if k not in ("worker", "config")}}
    info = machine_info()
    out["machine"] = info
    with tempfile.TemporaryDirectory(prefix="funcnn-bench-") as tmp:
        opts = {"synthetic": args.synthetic, "quick": args.quick, "data_dir": args.data_dir,
                "forced_kernels": args.forced_kernels, "cache": {"root": tmp, "paths": {}, "sizes": {}}}
        if args.latency:
            latency_report(args, task, opts, log, notes, md, out)
        elif not args.scaling_only:
            main_report(args, task, opts, info, log, notes, md, out)
        if args.scaling or args.scaling_only:
            scaling_report(args, opts, log, notes, md, out)
        shutil.rmtree(tmp, ignore_errors=True)
    if notes:
        print(("**Notes**\n" if md else "Notes:"))
        for n in dict.fromkeys(notes):
            print(f"{'- ' if md else '  '}{n}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**out, "notes": notes}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
