#!/usr/bin/env python
"""A modest fault campaign: hostile files, corruptions, killed saves and killed sweeps, with counts.

    python scripts/fault_campaign.py            # everything (about a minute)
    python scripts/fault_campaign.py --quick    # fewer corruptions and kills

Reports, as issue 24 asks:

* hostile files tried / refused, and the peak memory of each attempt (max RSS growth of a fresh
  interpreter that imported funcnn, by ``resource.getrusage``), against 2x the file's size;
* corruptions tried / detected: random byte flips and truncations of a saved .npz checkpoint;
  "detected" means ``funcnn.load`` raised ValueError (or the arrays came back bit-identical, when
  the damage hit bytes nothing reads, e.g. zip padding: counted as harmless, never as silent);
* kills tried / resumed identically: a ``funcnn.train(..., checkpoint=...)`` run in a child process
  SIGKILLed at a random moment, then resumed; the params must equal an uninterrupted run's bit for
  bit, and no temporary file may survive the next load;
* a sweep whose loky worker dies: trials finished / kept, and a resume that completes it.

Exit status 0 when every hostile file was refused within its memory bound, every corruption was
detected or harmless, every kill resumed identically and the sweep kept its finished trials.
"""
from __future__ import annotations

import argparse
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

import funcnn as F  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}


# --------------------------------------------------------------------------- hostile files

def _header(shape, dtype="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _zeros_member(zf, name, n_bytes, shape=None):
    with zf.open(name, "w", force_zip64=True) as fh:
        fh.write(_header(shape if shape is not None else (n_bytes // 8,)))
        block = bytes(1 << 20)
        for _ in range(n_bytes // len(block)):
            fh.write(block)


def hostile_files(folder):
    """``(name, path, how to load it)`` for each hostile file."""
    out = []
    # 1. a 1.5 KB model with padding=4000 (3 GB per row before the fix)
    spec = [F.reshape([28, 28, 1]), F.conv2d(8, 3, padding=4000), F.max_pool(2)]
    path = os.path.join(folder, "padding.npz")
    F.checkpoint.save(path, spec, {"W_1": np.zeros((3, 3, 1, 8), np.float32), "b_1": np.zeros(8, np.float32)},
                      loss="mean_squared_error")
    out.append(("model: conv2d padding=4000", path, f"funcnn.load({path!r})"))
    # 2. a deflate bomb as a data file's X (1 GB from ~1 MB)
    path = os.path.join(folder, "bomb.npz")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        _zeros_member(zf, "X.npy", 1 << 30)
        with zf.open("y.npy", "w") as fh:
            np.lib.format.write_array(fh, np.zeros(3, np.int64))
    out.append(("data: deflate bomb X (1 GiB)", path, f"funcnn.datasets.load({path!r})"))
    # 3. a deflate bomb inside a model's params
    path = os.path.join(folder, "model_bomb.npz")
    good = os.path.join(folder, "good.npz")
    F.save(good, [F.dense(2)], F.init_params([F.dense(2)], 3, seed=0), loss="softmax_cross_entropy")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "params/W_0.npy":
                _zeros_member(dst, info.filename, 256 << 20)
            else:
                dst.writestr(info.filename, src.read(info))
    out.append(("model: deflate bomb W_0 (256 MiB)", path, f"funcnn.load({path!r})"))
    # 4. a forged .npy header in an .npz (declares 8 GiB, holds 100 bytes)
    path = os.path.join(folder, "forged.npz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", _header((1 << 20, 1024)) + bytes(100))
        zf.writestr("y.npy", _header((3,), "<i8") + bytes(24))
    out.append(("data: forged header 8 GiB in .npz", path, f"funcnn.datasets.load({path!r})"))
    # 5. a forged .npy file
    path = os.path.join(folder, "forged.npy")
    with open(path, "wb") as fh:
        fh.write(_header((1 << 20, 1024)) + bytes(100))
    out.append(("data: forged header 8 GiB in .npy", path, f"funcnn.datasets.load_features({path!r}, 1024)"))
    # 6. a data directory whose y.npy header lies
    d = os.path.join(folder, "dir")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "X.npy"), np.zeros((3, 2)))
    with open(os.path.join(d, "y.npy"), "wb") as fh:
        fh.write(_header((1 << 31,), "<i8") + bytes(24))
    out.append(("data dir: y.npy header 16 GiB", d, f"funcnn.datasets.load_npy_directory({d!r})"))
    # 7. a gzip bomb as an MNIST IDX file
    import gzip
    path = os.path.join(folder, "train-images-idx3-ubyte.gz")
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(b"\x00\x00\x08\x03" + (4000).to_bytes(4, "big") + (512).to_bytes(4, "big") * 2)
        block = bytes(1 << 20)
        for _ in range(1 << 10):
            fh.write(block)
    out.append(("data: gzip bomb IDX (1 GiB)", path, f"funcnn.datasets.load_idx({path!r})"))
    # 8. a model whose dense layer would need 31 GB of params (no file: init_params)
    out.append(("spec: dense(10**7) on 784 inputs", None, "funcnn.init_params([funcnn.dense(10**7)], 784)"))
    return out


def measure(code):
    script = ("import resource, funcnn, funcnn.datasets\n"
              "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "err = ''\n"
              "try:\n"
              f"    {code}\n"
              "except Exception as exc:\n"
              "    err = f'{type(exc).__name__}: {exc}'\n"
              "print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
              "print(err[:300])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    if proc.returncode != 0:
        return None, None, f"crashed (exit {proc.returncode}): {proc.stderr.strip()[-200:]}"
    first, err = proc.stdout.split("\n", 1)
    base, grown = (int(v) for v in first.split())
    return base, grown, err.strip()


def _size(path):
    if path is None:
        return 0
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    return os.path.getsize(path)


def campaign_files(folder):
    ok = 0
    files = hostile_files(folder)
    print("hostile files (peak = max RSS growth over the baseline of a fresh interpreter with funcnn imported)")
    for name, path, code in files:
        base, grown, err = measure(code)
        size = _size(path)
        bound = 2 * size + (8 << 20)  # 2x the file plus a little allocator slack
        refused = err.startswith("ValueError")
        within = grown is not None and grown * 1024 <= bound
        ok += refused and within
        print(f"  {'refused' if refused else 'NOT REFUSED'}  {name:36s} file {size / 1024:8.1f} KiB  "
              f"baseline {base and base / 1024:6.1f} MiB  peak +{grown and grown / 1024:6.1f} MiB  "
              f"{'ok' if within else 'OVER 2x'}\n      {err[:160]}")
    print(f"hostile files: {len(files)} tried, {ok} refused within the memory bound")
    return ok == len(files)


# --------------------------------------------------------------------------- corruptions

def campaign_corruptions(folder, n):
    rng = random.Random(0)
    spec = [F.dense(16), F.relu(), F.dense(3)]
    params = F.init_params(spec, 8, seed=0)
    path = os.path.join(folder, "model.npz")
    F.save(path, spec, params, loss="softmax_cross_entropy", history={"loss": [1.0, 0.5]})
    data = open(path, "rb").read()
    detected = harmless = silent = 0
    for k in range(n):
        damaged = bytearray(data)
        if k % 4 == 3:
            damaged = damaged[:rng.randrange(1, len(data))]
        else:
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        bad = os.path.join(folder, "bad.npz")
        with open(bad, "wb") as fh:
            fh.write(bytes(damaged))
        try:
            loaded = F.load(bad)
        except ValueError:
            detected += 1
            continue
        same = (loaded["spec"] == spec and set(loaded["params"]) == set(params)
                and all(loaded["params"][key].tobytes() == params[key].tobytes() for key in params))
        harmless += same
        silent += not same
    print(f"corruptions: {n} tried, {detected} detected, {harmless} harmless (bytes nothing reads), "
          f"{silent} silent")
    return silent == 0


# --------------------------------------------------------------------------- killed training runs

TRAIN = r'''
import sys, numpy as np, funcnn as F
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True); X = (X / 16.0)[:600]; y = y[:600]
spec = [F.dense(32), F.relu(), F.dense(10)]
params = F.init_params(spec, 64, seed=0)
out, _ = F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.adam(1e-2), epochs=40, batch_size=32,
                 seed=3, checkpoint=sys.argv[1], progress=False)
np.savez(sys.argv[2], **out)
'''


def campaign_kills(folder, n):
    rng = random.Random(1)
    script = os.path.join(folder, "train_run.py")
    with open(script, "w") as fh:
        fh.write(TRAIN)
    ref_out = os.path.join(folder, "ref.npz")
    subprocess.run([sys.executable, script, os.path.join(folder, "ref_ckpt.npz"), ref_out], env=ENV, check=True)
    reference = dict(np.load(ref_out))
    same = killed = 0
    for k in range(n):
        ckpt, out = os.path.join(folder, f"ckpt{k}.npz"), os.path.join(folder, f"out{k}.npz")
        child = subprocess.Popen([sys.executable, script, ckpt, out], env=ENV)
        time.sleep(rng.uniform(1.0, 3.0))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            killed += 1
        child.wait()
        subprocess.run([sys.executable, script, ckpt, out], env=ENV, check=True)  # resume
        got = dict(np.load(out))
        temps = [name for name in os.listdir(folder) if name.startswith(f".ckpt{k}.npz.") and name.endswith(".tmp")]
        ok = set(got) == set(reference) and all(got[key].tobytes() == reference[key].tobytes() for key in got)
        same += ok and not temps
        if temps:
            print(f"  kill {k}: temporary files left: {temps}")
    print(f"kills: {n} tried ({killed} killed mid-run), {same} resumed bit-identical with no temporary file left")
    return same == n


# --------------------------------------------------------------------------- a sweep whose worker dies

def campaign_sweep(folder):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    flags = os.path.join(folder, "flags")
    os.makedirs(flags, exist_ok=True)

    def score(y_true, y_pred):
        import os as _os
        for k in range(100):
            try:
                _os.close(_os.open(_os.path.join(flags, f"call-{k}"), _os.O_CREAT | _os.O_EXCL))
                break
            except FileExistsError:
                continue
        if k == 3:
            _os._exit(1)
        return float((y_true == y_pred).mean())

    kw = dict(validation_data=(X[600:900], y[600:900]), loss="softmax_cross_entropy",
              trials=F.sweep.grid(l2=[0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]), base={"epochs": 5, "hidden": (16,)})
    log = os.path.join(folder, "sweep.jsonl")
    results = F.sweep.sweep(X[:600], y[:600], n_jobs=2, backend="loky", score=score, log=log, **kw)
    kept = sum(1 for r in results if not r["lost"])
    lost = len(results) - kept
    with open(log) as fh:
        lines = len(fh.readlines())

    def acc(y_true, y_pred):
        return float((y_true == y_pred).mean())
    resumed = F.sweep.sweep(X[:600], y[:600], n_jobs=1, score=acc, log=log, resume=True, **kw)
    fresh = F.sweep.sweep(X[:600], y[:600], n_jobs=1, score=acc, **kw)
    same = [(r["index"], r["score"]) for r in resumed] == [(r["index"], r["score"]) for r in fresh]
    print(f"sweep with a killed worker: {kept} of {len(results)} trials kept ({lines} in the results file), "
          f"{lost} lost; the resume ran {sum(1 for r in resumed if not r.get('resumed'))} and "
          f"{'equals' if same else 'DIFFERS FROM'} an uninterrupted sweep")
    return kept >= 1 and lines == kept and same


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        ok = campaign_files(folder)
        ok &= campaign_corruptions(folder, 40 if args.quick else 200)
        ok &= campaign_kills(folder, 3 if args.quick else 8)
        ok &= campaign_sweep(folder)
    print("campaign: " + ("all faults handled" if ok else "FAILURES above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
