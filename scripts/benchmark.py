#!/usr/bin/env python
"""Benchmark: funcnn against PyTorch (CPU) and scikit-learn's MLPClassifier on Fashion-MNIST.

The same 784-256-128-10 ReLU network, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8), batch 128,
no L2 (``alpha=0`` for scikit-learn, whose default would be 1e-4), each framework with its
own default initialisation and as its users run it:

* funcnn — ``funcnn.train(..., optimizer=adam(1e-3), batch_size=128)``, float32;
* PyTorch — ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU``, ``torch.optim.Adam``,
  ``F.cross_entropy``; minibatches gathered from ``torch.randperm`` each epoch; float32,
  ``torch.get_num_threads()`` threads (the default: the machine's cores);
* scikit-learn — ``MLPClassifier(hidden_layer_sizes=(256, 128), solver="adam",
  learning_rate_init=1e-3, batch_size=128, alpha=0)``, one ``partial_fit`` per epoch (which
  keeps Adam's state, unlike ``fit`` with ``warm_start``), float64 inputs.

Every framework computes its training loss each minibatch (funcnn and PyTorch also count
correct predictions, as funcnn's history does). NumPy's BLAS keeps its default threads.

How it measures
* Each framework runs in its own subprocess, so peak memory (``ru_maxrss``) is its own.
  The processes stay alive and the parent runs them one epoch at a time, alternating the
  order every round, so load changes on the machine hit all of them alike. The first epoch
  is a warm-up; the table gives the median of the others.
* A fourth process runs, each round, every matrix product of one training epoch (forward,
  weight gradients, input gradients; same shapes and memory layouts as funcnn's loop) shape
  by shape in tight loops: the time the GEMMs alone need at this machine's measured float32
  throughput. Divided by funcnn's epoch time, that is the fraction of the GEMM roofline
  the training loop reaches.
* Inference: ``predict`` on the 10 000 test images (PyTorch: ``eval()``, ``no_grad``),
  alternated between the processes; median.
* ``--scaling``: funcnn's epoch time against batch size (32, 128, 512) and hidden widths
  (64 ... 1024, as (w, w/2)), next to the GEMM-only time and an Adam-only time (the
  in-place flat update funcnn's loop runs) for the same shapes; the rest is everything
  else (activations, loss, batch gather, Python). PyTorch's epoch time for comparison.

Usage::

    python scripts/benchmark.py                  # 5 epochs (1 warm-up + 4 timed)
    python scripts/benchmark.py --quick          # smoke run: 10 000 samples, 2 epochs
    python scripts/benchmark.py --scaling        # plus the scaling table
    python scripts/benchmark.py --markdown       # tables in Markdown, with the machine
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROTO = "@@bench "  # prefix of protocol lines on a worker's stdout; anything else is ignored


# =========================================================================== workers
#
# A worker is this script started with --worker NAME --config JSON. It loads the data,
# builds its model, prints {"ready": ...} and then answers commands read from stdin, one
# JSON line per command: "epoch" (train one epoch, reply its seconds), "predict" (time one
# prediction over the test set), "finish" (reply accuracy, peak memory, threads; exit).

def _send(obj) -> None:
    sys.stdout.write(PROTO + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _recv() -> str:
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)  # the parent went away
    return line.strip()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM), so that it measures from here on (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ready(**info) -> None:
    """Tell the parent this worker is set up; from here on VmHWM is the training's own peak."""
    rss = _rss_mb()
    _send({"ready": True, "rss_mb": rss, "hwm_reset": _reset_peak(), **info})


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [f"{i['internal_api']} {i.get('version')}: {i['num_threads']} threads" for i in threadpool_info()
            if i["user_api"] == "blas"]


def _load_data(cfg):
    sys.path.insert(0, REPO)
    import numpy as np
    from funcnn.datasets import load_mnist
    X, y = load_mnist(split="train")
    Xt, yt = load_mnist(split="test")
    n = cfg["n_train"]
    if n < X.shape[0]:
        keep = np.random.default_rng(12345).permutation(X.shape[0])[:n]
        X, y = X[np.sort(keep)], y[np.sort(keep)]
    return X, y, Xt, yt


def _serve(run_epoch, predict, finish_info) -> None:
    """The command loop of a worker (funcnn's enters it after training)."""
    train_peak = None
    while True:
        cmd = _recv()
        if cmd == "epoch":
            t0 = time.perf_counter()
            extra = run_epoch() or {}
            _send({"epoch_time": time.perf_counter() - t0, **extra})  # extra may set its own epoch_time
        elif cmd == "predict":
            if train_peak is None:
                train_peak = _status_mb("VmHWM")
            t0 = time.perf_counter()
            predict()
            _send({"predict_time": time.perf_counter() - t0})
        elif cmd == "finish":
            if train_peak is None:
                train_peak = _status_mb("VmHWM")
            _send({**finish_info(), "peak_mb": _peak_mb(), "train_peak_mb": train_peak})
            return


def _instrument_funcnn():
    """Time, inside funcnn's real training loop, the dense layers (their matrix products plus the
    bias add / bias gradient) and the optimizer step, by wrapping the functions train looks up.
    This process only; the wrappers cost well under a microsecond per call."""
    import importlib
    layers = importlib.import_module("funcnn.layers")
    optimizers = importlib.import_module("funcnn.optimizers")
    spent = {"dense": 0.0, "optimizer": 0.0}

    def timed(fn, key):
        def wrapper(*args):
            t0 = time.perf_counter()
            out = fn(*args)
            spent[key] += time.perf_counter() - t0
            return out
        return wrapper
    layers.LAYERS["dense"]["forward"] = timed(layers.LAYERS["dense"]["forward"], "dense")
    layers.BACKWARD_INTO["dense"] = timed(layers.BACKWARD_INTO["dense"], "dense")
    optimizers._update_inplace = timed(optimizers._update_inplace, "optimizer")
    return spent


def worker_funcnn(cfg) -> None:
    X, y, Xt, yt = _load_data(cfg)
    import numpy as np
    import funcnn as F
    from funcnn import optimizers
    widths, batch = cfg["widths"], cfg["batch"]
    spec = [layer for w in widths for layer in (F.dense(w), F.relu())] + [F.dense(10)]
    params = F.init_params(spec, X.shape[1], seed=0)
    spent = _instrument_funcnn() if cfg.get("profile") else None
    _ready(threads=_blas_threads(), dtype=str(X.dtype))
    last = {"t0": None, "params": params}
    epochs = cfg["epochs"]

    def on_epoch(epoch, p, history):  # train calls this after each epoch: report, wait for the next "epoch"
        _send({"epoch_time": time.perf_counter() - last["t0"], "loss": history["loss"][-1], "spent": dict(spent or {})})
        if spent:
            spent.update(dict.fromkeys(spent, 0.0))
        last["params"] = p
        if epoch < epochs:
            if _recv() != "epoch":
                raise SystemExit("expected 'epoch'")
            last["t0"] = time.perf_counter()

    if _recv() != "epoch":
        raise SystemExit("expected 'epoch'")
    last["t0"] = time.perf_counter()
    params, _ = F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=optimizers.adam(1e-3),
                        epochs=epochs, batch_size=batch, seed=0, progress=False, callbacks=[on_epoch])

    def predict():
        return F.predict(spec, params, Xt, loss="softmax_cross_entropy")

    def info():
        return {"accuracy": float(np.mean(predict() == yt))}
    _serve(lambda: None, predict, info)


def worker_torch(cfg) -> None:
    X, y, Xt, yt = _load_data(cfg)
    import numpy as np
    import torch
    import torch.nn.functional as TF
    torch.manual_seed(0)
    widths, batch = cfg["widths"], cfg["batch"]
    layers, n_in = [], X.shape[1]
    for w in widths:
        layers += [torch.nn.Linear(n_in, w), torch.nn.ReLU()]
        n_in = w
    model = torch.nn.Sequential(*layers, torch.nn.Linear(n_in, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xtr, ytr = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(0)
    n = Xtr.shape[0]
    _ready(dtype=str(Xtr.dtype),
           threads=[f"torch {torch.__version__}: {torch.get_num_threads()} threads"] + (_blas_threads() or []))

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

    def predict():
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(Xt)).argmax(1).numpy()

    def info():
        return {"accuracy": float(np.mean(predict() == yt))}
    _serve(run_epoch, predict, info)


def worker_sklearn(cfg) -> None:
    X, y, Xt, yt = _load_data(cfg)
    import numpy as np
    import sklearn
    from sklearn.neural_network import MLPClassifier
    X64, Xt64 = X.astype(np.float64), Xt.astype(np.float64)  # what MLPClassifier computes in
    clf = MLPClassifier(hidden_layer_sizes=tuple(cfg["widths"]), activation="relu", solver="adam",
                        learning_rate_init=1e-3, batch_size=cfg["batch"], alpha=0.0, shuffle=True,
                        random_state=0)
    classes = np.arange(10)
    _ready(dtype=str(X64.dtype), threads=[f"sklearn {sklearn.__version__}"] + (_blas_threads() or []))

    def run_epoch():
        clf.partial_fit(X64, y, classes=classes)
        return {"loss": float(clf.loss_)}

    def info():
        return {"accuracy": float(np.mean(clf.predict(Xt64) == yt))}
    _serve(run_epoch, lambda: clf.predict(Xt64), info)


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
    sizes = [784] + list(cfg["widths"]) + [10]
    shapes = gemm_shapes(cfg["n_train"], cfg["batch"], sizes)
    rng = np.random.default_rng(0)
    ops = []
    for kind, m, k, n, count, ta, tb in shapes:
        A = rng.random((k, m), dtype=np.float32).T if ta else rng.random((m, k), dtype=np.float32)
        B = rng.random((n, k), dtype=np.float32).T if tb else rng.random((k, n), dtype=np.float32)
        ops.append((kind, m, k, n, count, A, B, np.empty((m, n), dtype=np.float32)))
    flops = sum(2 * m * k * n * count for _, m, k, n, count, *_ in ops)
    per_shape = {}
    _ready(threads=_blas_threads(), flops=flops)

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
    _serve(run_epoch, lambda: None, info)


WORKERS = {"funcnn": worker_funcnn, "torch": worker_torch, "sklearn": worker_sklearn, "gemm": worker_gemm}


# =========================================================================== parent

def start(name, cfg):
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", name, "--config", json.dumps(cfg)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    ready = read(proc, name)
    return {"name": name, "proc": proc, "ready": ready, "epochs": [], "epoch_info": [], "predict": []}


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
    return read(w["proc"], w["name"])


def run_set(names, cfg, epochs, predicts, log):
    """Start one worker per name, alternate epochs and predictions between them, finish them."""
    workers = []
    for name in names:  # one at a time, so that startup (data loading) does not overlap
        workers.append(start(name, {**cfg, "epochs": epochs}))
    for r in range(epochs):
        k = r % len(workers)
        for w in workers[k:] + workers[:k]:
            reply = ask(w, "epoch")
            w["epochs"].append(reply["epoch_time"])
            w["epoch_info"].append(reply)
        log(f"  epoch {r + 1}/{epochs}: " + "  ".join(f"{w['name']} {w['epochs'][-1]:.3f}s" for w in workers))
    for r in range(predicts):
        k = r % len(workers)
        for w in workers[k:] + workers[:k]:
            if w["name"] != "gemm":
                w["predict"].append(ask(w, "predict")["predict_time"])
    for w in workers:
        w["final"] = ask(w, "finish")
        w["proc"].wait()
    return {w["name"]: w for w in workers}


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


def timed(w):
    """Median seconds per epoch after the warm-up epoch."""
    xs = w["epochs"][1:] or w["epochs"]
    return statistics.median(xs)


def per_round(a, b):
    """a's epoch time over b's, round by round (each pair ran back to back), after the warm-up:
    (median, min, max). Robust against the machine's speed drifting between rounds."""
    xs = [x / y for x, y in zip(a["epochs"], b["epochs"])]
    xs = xs[1:] or xs
    return statistics.median(xs), min(xs), max(xs)


def fmt_ratio(r):
    return f"{r[0]:.2f} ({r[1]:.2f}–{r[2]:.2f})"


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
    info = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__, "blas": blas}
    if importlib.util.find_spec("torch"):
        import torch
        info["torch"] = torch.__version__
    import sklearn
    info["sklearn"] = sklearn.__version__
    return info


def fmt_table(rows, markdown):
    if markdown:
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="epochs per framework, the first a warm-up (default 5)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 10 000 training samples, 2 epochs")
    ap.add_argument("--scaling", action="store_true", help="also the batch-size / width scaling table")
    ap.add_argument("--scaling-epochs", type=int, default=None, help="epochs per scaling point (default 3)")
    ap.add_argument("--markdown", action="store_true", help="print the tables in Markdown, with the machine")
    ap.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    ap.add_argument("--predicts", type=int, default=None, help="timed predictions per framework (default 15)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        WORKERS[args.worker](json.loads(args.config))
        return 0

    epochs = args.epochs or (2 if args.quick else 5)
    if epochs < 1:
        ap.error("--epochs must be at least 1")
    n_train = 10_000 if args.quick else 60_000
    predicts = args.predicts or (3 if args.quick else 15)
    md = args.markdown
    log = (lambda s: print(s, file=sys.stderr, flush=True))
    have_torch = importlib.util.find_spec("torch") is not None
    names = ["funcnn"] + (["torch"] if have_torch else []) + ([] if args.no_sklearn else ["sklearn"]) + ["gemm"]
    info = machine_info()
    log(f"load average before: {os.getloadavg()}")
    log(f"main run: {', '.join(names)}; {epochs} epochs of {n_train} samples, batch 128, interleaved")
    cfg = {"n_train": n_train, "batch": 128, "widths": [256, 128]}
    acct0, t0 = cpu_accounting(), time.time()
    res = run_set(names, cfg, epochs, predicts, log)
    foreign, steal = foreign_load(acct0, cpu_accounting(), time.time() - t0)
    load_after = os.getloadavg()
    log(f"load average after: {load_after}; other processes used {foreign:.2f} cores on average, steal {steal:.2f}")

    f = res["funcnn"]
    t_f = timed(f)
    gemm = res["gemm"]
    t_gemm = timed(gemm)
    flops = gemm["ready"]["flops"]
    n_timed = max(1, epochs - 1)
    print(("## " if md else "") + f"Fashion-MNIST, 784-256-128-10 ReLU, Adam lr 1e-3, batch 128, no L2, "
          f"{n_train} training samples, {epochs} epochs (timings: median of the last {n_timed})\n")
    if md:
        print(f"{info['date']}; CPU {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
              f"NumPy {info['numpy']} ({info['blas']}), "
              + (f"PyTorch {info['torch']}, " if "torch" in info else "PyTorch not installed, ")
              + f"scikit-learn {info['sklearn']}. During the run other processes kept {foreign:.2f} CPU cores "
              f"busy on average (hypervisor steal {steal:.2f}).\n")
    elif foreign > 0.1:
        print(f"(other processes kept {foreign:.2f} CPU cores busy during the run: the timings are disturbed)\n")
    if foreign > 0.1 and md:
        print("**Warning: the machine was not idle during this run; the timings are disturbed.**\n")
    label = {"funcnn": "funcnn", "torch": "PyTorch (CPU)", "sklearn": "scikit-learn MLPClassifier"}
    fw = [n for n in names if n != "gemm"]
    ratios = {n: per_round(f, res[n]) for n in fw if n != "funcnn"}
    rows = [["", *[label[n] for n in fw]]]
    rows.append(["seconds / epoch (median)", *[f"{timed(res[n]):.3f}" for n in fw]])
    rows.append(["funcnn time ÷ this (median of rounds, range)",
                 *[("1" if n == "funcnn" else fmt_ratio(ratios[n])) for n in fw]])
    rows.append([f"test accuracy after {epochs} epochs", *[f"{100 * res[n]['final']['accuracy']:.2f} %" for n in fw]])
    pred = {n: statistics.median(res[n]["predict"]) for n in fw}
    rows.append(["predict 10 000 test images (ms, median)", *[f"{1e3 * pred[n]:.1f}" for n in fw]])
    rows.append(["funcnn predict time ÷ this", *[("1" if n == "funcnn" else f"{pred['funcnn'] / pred[n]:.2f}") for n in fw]])
    rows.append(["RSS with data + model, before training (MB)", *[f"{res[n]['ready']['rss_mb']:.0f}" for n in fw]])
    rows.append(["peak RSS while training (MB)", *[f"{res[n]['final']['train_peak_mb']:.0f}" for n in fw]])
    rows.append(["… training's own (peak − before, MB)",
                 *[f"{res[n]['final']['train_peak_mb'] - res[n]['ready']['rss_mb']:.0f}" for n in fw]])
    rows.append(["peak RSS of the whole process (MB)", *[f"{res[n]['final']['peak_mb']:.0f}" for n in fw]])
    rows.append(["dtype", *[res[n]["ready"]["dtype"] for n in fw]])
    rows.append(["threads", *["; ".join(res[n]["ready"]["threads"] or ["?"]) for n in fw]])
    print(fmt_table(rows, md))
    print()
    frac = per_round(gemm, f)
    lead = "**GEMM roofline.** " if md else "GEMM roofline: "
    print(lead + f"The forward + backward matrix products of one epoch are {flops / 1e9:.1f} GFLOP. Run shape by "
          f"shape in tight loops they take {t_gemm:.3f} s ({flops / t_gemm / 1e9:.0f} GFLOP/s: this machine's "
          f"measured float32 peak for these shapes); funcnn's training loop, at {t_f:.3f} s per epoch, does "
          f"{flops / t_f / 1e9:.0f} GFLOP/s: " + ("**" if md else "") + f"{100 * frac[0]:.0f} %"
          + ("**" if md else "") + f" of the roofline (median of the rounds' GEMM time ÷ funcnn time; "
          f"range {100 * frac[1]:.0f}–{100 * frac[2]:.0f} %).")
    per_shape = gemm["final"]["per_shape_gflops"]
    print(("\n" if md else "") + "Measured float32 GEMM throughput per shape: "
          + "; ".join(f"{name} {g:.0f} GFLOP/s" for name, g in per_shape) + ".")
    print()
    checks = []
    if "torch" in res:
        checks.append(("epoch time ≤ 0.70 × PyTorch's", ratios["torch"][0], 0.70, "≤"))
    if "sklearn" in res:
        checks.append(("epoch time ≤ 0.40 × scikit-learn's", ratios["sklearn"][0], 0.40, "≤"))
    checks.append(("≥ 60 % of the GEMM roofline", frac[0], 0.60, "≥"))
    if "torch" in res:
        checks.append(("predict at least as fast as PyTorch (time ratio ≤ 1)", pred["funcnn"] / pred["torch"], 1.0, "≤"))
    accs = {n: 100 * res[n]["final"]["accuracy"] for n in fw}
    spread = max(accs.values()) - min(accs.values())
    checks.append(("test accuracies within 1 point of each other", spread, 1.0, "≤"))
    print(("**Targets**" if md else "Targets:")
          + (" (a --quick smoke run: a subset and 2 epochs, so these say little)" if args.quick else "")
          + ("\n" if md else ""))
    for name, value, bound, op in checks:
        ok = value <= bound if op == "≤" else value >= bound
        print(f"{'- ' if md else '  '}{'met' if ok else 'NOT met'}: {name}: {value:.2f} (bound {bound})")
    if not have_torch:
        print("\n(PyTorch is not installed: its column is skipped.)")

    if args.scaling:
        print()
        scaling(args, n_train, have_torch, md, log)
    return 0


def scaling(args, n_train, have_torch, md, log):
    epochs = args.scaling_epochs or (2 if args.quick else 3)
    points = [(32, [256, 128]), (128, [256, 128]), (512, [256, 128])]
    points += [(128, [w, w // 2]) for w in (64, 128, 512, 1024)]
    rows = [["batch", "hidden", "funcnn s/epoch", "in dense layers", "in Adam", "everything else",
             "GEMMs at peak (s)", "% of roofline"] + (["PyTorch s/epoch", "funcnn ÷ PyTorch"] if have_torch else [])]
    for batch, widths in points:
        names = ["funcnn", "gemm"] + (["torch"] if have_torch else [])
        log(f"scaling: batch {batch}, hidden {widths}")
        res = run_set(names, {"n_train": n_train, "batch": batch, "widths": widths, "profile": True}, epochs, 0, log)
        f = res["funcnn"]
        t = timed(f)
        infos = f["epoch_info"][1:] or f["epoch_info"]
        dense = statistics.median(i["spent"]["dense"] for i in infos)
        opt = statistics.median(i["spent"]["optimizer"] for i in infos)
        frac = per_round(res["gemm"], f)
        share = lambda x: f"{x:.3f} s ({100 * x / t:.0f} %)"  # noqa: E731
        row = [str(batch), f"{widths[0]}-{widths[1]}", f"{t:.3f}", share(dense), share(opt), share(t - dense - opt),
               f"{timed(res['gemm']):.3f}", f"{100 * frac[0]:.0f} %"]
        if have_torch:
            row += [f"{timed(res['torch']):.3f}", f"{per_round(f, res['torch'])[0]:.2f}"]
        rows.append(row)
    print(("## " if md else "") + f"Scaling: where funcnn's epoch goes ({n_train} samples, Adam, "
          f"{epochs} epochs per point, median after the first)\n")
    print(fmt_table(rows, md))
    print("\nMeasured inside funcnn's training loop: *in dense layers* is the time in the dense layers' forward and "
          "backward calls (their matrix products, which dominate, plus the bias add and the bias gradient); *in Adam* "
          "is the in-place optimizer step over the flat parameter buffer; *everything else* is the rest of the epoch "
          "(activations, loss, batch gather, metrics, Python). *GEMMs at peak*: the same matrix products run shape "
          "by shape in tight loops; *% of roofline* = that ÷ funcnn's epoch time, round by round.")


if __name__ == "__main__":
    sys.exit(main())
