#!/usr/bin/env python
"""A causal character-level transformer on real text, trained by funcnn and by PyTorch alike.

    python scripts/char_transformer.py /usr/share/games/fortunes     # Debian's fortunes package
    python scripts/char_transformer.py some.txt --steps 2000 --d 128 --blocks 4
    python scripts/char_transformer.py CORPUS --quick                 # a few seconds' smoke run

The corpus is a text file, or a directory whose plain files are read in sorted order (the
fortunes package's ``.dat`` indexes and ``.u8`` links are skipped); nothing is downloaded.
Characters are the text's UTF-8 bytes, ids 0..255 (the fortunes are ASCII: a byte is a
character; the script prints the share of non-ASCII bytes). The text is split by position: the
first 90 % trains, the last 10 % validates.

The model is the spec file ``--spec`` (default scripts/specs/char_transformer.json, which
:func:`transformer_spec` writes with ``--write-spec``): an embedding, learned positions, pre-norm
blocks (``x + attention(layer_norm(x))``, then ``x + mlp(layer_norm(x))`` with a 4d GELU MLP, both
residual blocks), a final layer norm and a dense layer to 256 logits; the context is the
positional layer's ``max_len``. Training: Adam, ``--steps`` steps of ``--batch``
windows of ``--context`` characters; the windows' start offsets are drawn uniformly from the
training text by ``np.random.default_rng(seed + 1).integers(0, len(train) - context, batch)``,
once per step, and the targets are the windows shifted by one character. Each step is funcnn's
public ``value_and_grad`` + ``update``.

The same model is then trained in PyTorch (``nn.Embedding``, ``nn.LayerNorm``,
``nn.MultiheadAttention(batch_first=True)`` with a causal mask, ``nn.Linear``, ``torch.optim.Adam``)
from funcnn's initial weights, on the same windows, for the same steps. Reported: validation loss
in bits per character (on up to ``--val-windows`` non-overlapping windows of the validation text,
every position counted) for funcnn, PyTorch, and the unigram and bigram baselines (character
frequencies of the training text with add-one smoothing); median step times; generated samples.
The learning curves go to scripts/figures/char_transformer.png, the trained model (with its
alphabet) to ``--save``; ``scripts/sample_text.py MODEL`` samples from a saved model.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np

import _common as C

import funcnn as F
from funcnn import layers as L
from funcnn import sequence as S

SPEC_FILE = os.path.join(C.HERE, "specs", "char_transformer.json")
LN2 = math.log(2.0)


# --------------------------------------------------------------------------- data

def read_corpus(path: str) -> bytes:
    """The bytes of a file, or of a directory's plain files in sorted order (no .dat/.u8, no links)."""
    if os.path.isdir(path):
        names = [n for n in sorted(os.listdir(path)) if not n.endswith((".dat", ".u8")) and not n.startswith(".")]
        files = [os.path.join(path, n) for n in names
                 if os.path.isfile(os.path.join(path, n)) and not os.path.islink(os.path.join(path, n))]
        if not files:
            raise SystemExit(f"{path}: no text files in this directory")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise SystemExit(f"{path}: no such file or directory")
    parts = []
    for f in files:
        with open(f, "rb") as fh:
            parts.append(fh.read())
    data = b"\n".join(parts)
    if len(data) < 10_000:
        raise SystemExit(f"{path}: only {len(data)} bytes; a character model needs a larger corpus")
    return data


def baselines(train: np.ndarray, val: np.ndarray, alphabet: np.ndarray):
    """Unigram and bigram bits per character on ``val``, from ``train``'s counts with add-one smoothing
    over ``alphabet`` (the byte values the corpus uses)."""
    index = np.full(256, -1)
    index[alphabet] = np.arange(alphabet.size)
    tr, va, A = index[train], index[val], alphabet.size
    uni = np.bincount(tr, minlength=A) + 1.0
    uni /= uni.sum()
    unigram = float(-np.log2(uni[va]).mean())
    pairs = np.zeros((A, A))
    np.add.at(pairs, (tr[:-1], tr[1:]), 1.0)
    pairs += 1.0
    pairs /= pairs.sum(axis=1, keepdims=True)
    bigram = float(-np.log2(pairs[va[:-1], va[1:]]).mean())
    return unigram, bigram


def windows(ids: np.ndarray, starts: np.ndarray, T: int):
    """Inputs ``ids[s:s+T]`` and targets ``ids[s+1:s+T+1]`` for each start ``s``: two (len(starts), T) arrays."""
    idx = starts[:, None] + np.arange(T)
    return ids[idx], ids[idx + 1]


def transformer_spec(vocab: int = 256, d: int = 64, heads: int = 4, blocks: int = 2, context: int = 64):
    """A causal pre-norm transformer as a spec (plain JSON data). Its MLP's GELU is the tanh form
    (GPT-2's; SciPy's erf, which the exact form needs, costs 7x a tanh on this machine)."""
    spec = [L.embedding(vocab, d), L.positional(context)]
    for _ in range(blocks):
        spec.append({"type": "residual", "body": [L.layer_norm(), L.attention(heads, causal=True)]})
        spec.append({"type": "residual", "body": [L.layer_norm(), L.dense(4 * d), L.gelu("tanh"), L.dense(d)]})
    return spec + [L.layer_norm(), L.dense(vocab)]


def spec_sizes(spec):
    """``(d, heads, context)`` of a :func:`transformer_spec`-shaped spec (what the torch twin needs)."""
    if not (spec[0].get("type") == "embedding" and spec[1].get("type") == "positional"
            and all(l.get("type") == "residual" for l in spec[2:-2]) and len(spec[2:-2]) % 2 == 0):
        raise SystemExit("the spec must be shaped as transformer_spec() writes it (embedding, positional, "
                         "pairs of residual attention/MLP blocks, layer_norm, dense)")
    return int(spec[0]["dim"]), int(spec[2]["body"][1]["heads"]), int(spec[1]["max_len"])


def decode(ids) -> str:
    return bytes(np.asarray(ids, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- torch twin

def torch_model(spec, params, heads: int):
    """The spec as torch modules holding funcnn's ``params`` (funcnn's W is Linear.weight transposed)."""
    import torch
    nn = torch.nn

    def t(a):
        return torch.tensor(np.array(a))

    gelu = spec[3]["body"][2].get("approximate", "none")

    class Block(nn.Module):
        def __init__(self, path_attn, path_mlp, d):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            with torch.no_grad():
                self.ln1.weight.copy_(t(params[f"gamma_{path_attn}.body.0"]))
                self.ln1.bias.copy_(t(params[f"beta_{path_attn}.body.0"]))
                a = f"{path_attn}.body.1"
                self.attn.in_proj_weight.copy_(torch.cat([t(params[f"W{x}_{a}"]).T for x in "qkv"], 0))
                self.attn.in_proj_bias.copy_(torch.cat([t(params[f"b{x}_{a}"]) for x in "qkv"]))
                self.attn.out_proj.weight.copy_(t(params[f"Wo_{a}"]).T)
                self.attn.out_proj.bias.copy_(t(params[f"bo_{a}"]))
                self.ln2.weight.copy_(t(params[f"gamma_{path_mlp}.body.0"]))
                self.ln2.bias.copy_(t(params[f"beta_{path_mlp}.body.0"]))
                for lin, j in ((self.fc1, 1), (self.fc2, 3)):
                    lin.weight.copy_(t(params[f"W_{path_mlp}.body.{j}"]).T)
                    lin.bias.copy_(t(params[f"b_{path_mlp}.body.{j}"]))

        def forward(self, x, mask):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)[0]
            return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x)), approximate=gelu))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            V, d = params["E_0"].shape
            n = len(spec)
            self.emb = nn.Embedding(V, d)
            self.pos = nn.Parameter(t(params["P_1"]))
            self.blocks = nn.ModuleList([Block(str(i), str(i + 1), d) for i in range(2, n - 2, 2)])
            self.ln = nn.LayerNorm(d)
            self.out = nn.Linear(d, V)
            with torch.no_grad():
                self.emb.weight.copy_(t(params["E_0"]))
                self.ln.weight.copy_(t(params[f"gamma_{n - 2}"]))
                self.ln.bias.copy_(t(params[f"beta_{n - 2}"]))
                self.out.weight.copy_(t(params[f"W_{n - 1}"]).T)
                self.out.bias.copy_(t(params[f"b_{n - 1}"]))

        def forward(self, ids):
            T = ids.shape[1]
            mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=self.pos.dtype)
            x = self.emb(ids) + self.pos[:T]
            for b in self.blocks:
                x = b(x, mask)
            return self.out(self.ln(x))
    return Model()


def train_torch(spec, params, heads, batches, val, lr, eval_every):
    import torch
    model = torch_model(spec, params, heads)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    curve, losses, times = [], [], []
    Xv, yv = (torch.tensor(a) for a in val)
    for step, (xb, yb) in enumerate(batches, 1):
        xb, yb = torch.tensor(xb), torch.tensor(yb)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(xb)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1))
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
        if step % eval_every == 0 or step == len(batches):
            with torch.no_grad():
                o = model(Xv)
                v = float(torch.nn.functional.cross_entropy(o.reshape(-1, o.shape[-1]), yv.reshape(-1)))
            curve.append((step, v / LN2))
    return curve, losses, times


# --------------------------------------------------------------------------- funcnn

def train_funcnn(spec, params, batches, val, lr, eval_every):
    opt = F.adam(lr)
    state = F.init_state(opt, params)
    curve, losses, times = [], [], []
    for step, (xb, yb) in enumerate(batches, 1):
        start = time.perf_counter()
        value, grads = F.value_and_grad(spec, params, xb, yb, loss="softmax_cross_entropy")
        params, state = F.update(opt, params, grads, state)
        times.append(time.perf_counter() - start)
        losses.append(value)
        if step % eval_every == 0 or step == len(batches):
            v = F.evaluate(spec, params, val[0], val[1], loss="softmax_cross_entropy")["loss"]
            curve.append((step, v / LN2))
    return params, curve, losses, times


def jax_step_fn(spec, params, heads, lr):
    """A jitted JAX + optax training step for the same model: ``(step(state, x, y) -> (state, loss), state)``."""
    import jax
    import jax.numpy as jnp
    import optax
    gelu_approx = spec[3]["body"][2].get("approximate", "none") == "tanh"
    n = len(spec)

    def ln(x, g, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / jnp.sqrt(v + 1e-5) * g + b

    def attn(x, p, a):
        B, T, d = x.shape
        dh = d // heads

        def split(t):
            return t.reshape(B, T, heads, dh).transpose(0, 2, 1, 3)
        q, k, v = (split(x @ p[f"W{c}_{a}"] + p[f"b{c}_{a}"]) for c in "qkv")
        s = q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(dh)
        s = jnp.where(jnp.tri(T, dtype=bool), s, -jnp.inf)
        o = (jax.nn.softmax(s, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
        return o @ p[f"Wo_{a}"] + p[f"bo_{a}"]

    def logits(p, ids):
        T = ids.shape[1]
        x = p["E_0"][ids] + p["P_1"][:T]
        for i in range(2, n - 2, 2):
            x = x + attn(ln(x, p[f"gamma_{i}.body.0"], p[f"beta_{i}.body.0"]), p, f"{i}.body.1")
            m = f"{i + 1}.body"
            h = jax.nn.gelu(ln(x, p[f"gamma_{m}.0"], p[f"beta_{m}.0"]) @ p[f"W_{m}.1"] + p[f"b_{m}.1"],
                            approximate=gelu_approx)
            x = x + h @ p[f"W_{m}.3"] + p[f"b_{m}.3"]
        return ln(x, p[f"gamma_{n - 2}"], p[f"beta_{n - 2}"]) @ p[f"W_{n - 1}"] + p[f"b_{n - 1}"]

    def loss(p, ids, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(p, ids), y).mean()
    opt = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)

    @jax.jit
    def step(state, ids, y):
        p, o = state
        value, g = jax.value_and_grad(loss)(p, ids, y)
        updates, o = opt.update(g, o, p)
        return (optax.apply_updates(p, updates), o), value
    p = {k: jnp.asarray(v) for k, v in params.items()}
    return step, (p, opt.init(p))


def bench(framework, spec, params, heads, batches, lr):
    """Wall time of each training step (seconds) of ``framework`` on ``batches``: what benchmark.py reads."""
    times = []
    if framework == "funcnn":
        opt = F.adam(lr)
        state = F.init_state(opt, params)
        for xb, yb in batches:
            start = time.perf_counter()
            _, grads = F.value_and_grad(spec, params, xb, yb, loss="softmax_cross_entropy")
            params, state = F.update(opt, params, grads, state)
            times.append(time.perf_counter() - start)
    elif framework == "torch":
        import torch
        model = torch_model(spec, params, heads)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for xb, yb in batches:
            xb, yb = torch.tensor(xb), torch.tensor(yb)
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1)).backward()
            opt.step()
            times.append(time.perf_counter() - start)
    elif framework == "jax":
        import jax
        step, state = jax_step_fn(spec, params, heads, lr)
        for xb, yb in batches:
            start = time.perf_counter()
            state, value = step(state, xb, yb)
            jax.block_until_ready(value)
            times.append(time.perf_counter() - start)
    else:
        raise SystemExit(f"--bench: unknown framework {framework!r} (funcnn, torch, jax)")
    return times


def plot(path, f_curve, t_curve, f_losses, t_losses, unigram, bigram):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    k = max(1, len(f_losses) // 50)

    def smooth(a):
        a = np.asarray(a) / LN2
        return np.convolve(a, np.ones(k) / k, mode="valid")
    steps = np.arange(k, len(f_losses) + 1)
    ax.plot(steps, smooth(f_losses), color="C0", alpha=0.4, label="funcnn train (running mean)")
    ax.plot(steps, smooth(t_losses), color="C1", alpha=0.4, label="PyTorch train (running mean)")
    ax.plot(*zip(*f_curve), "o-", color="C0", label="funcnn validation")
    ax.plot(*zip(*t_curve), "s--", color="C1", label="PyTorch validation")
    ax.axhline(unigram, color="gray", ls=":", label=f"unigram {unigram:.2f}")
    ax.axhline(bigram, color="k", ls=":", label=f"bigram {bigram:.2f}")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title("character-level transformer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = C.base_parser(__doc__.split("\n\n")[0], threads=1)
    parser.add_argument("corpus", nargs="?", default=None,
                        help="a text file, or a directory of text files (e.g. /usr/share/games/fortunes)")
    parser.add_argument("--spec", default=SPEC_FILE, help="the model's spec (JSON; default %(default)s)")
    parser.add_argument("--write-spec", action="store_true", help="write transformer_spec() to --spec and exit")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--val-windows", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="train funcnn only")
    parser.add_argument("--save", default=None, help="save the funcnn model here (.npz)")
    parser.add_argument("--bench", metavar="FRAMEWORK", default=None,
                        help="only time --steps training steps of funcnn, torch or jax (the first 3 are "
                             "warm-up) and print them as JSON (what scripts/benchmark.py --task "
                             "char-transformer runs, one process per framework)")
    args = parser.parse_args(argv)
    if args.write_spec:
        text = "[\n" + ",\n".join("  " + json.dumps(layer) for layer in transformer_spec()) + "\n]\n"
        with open(args.spec, "w") as fh:
            fh.write(text)
        print(f"wrote {args.spec}")
        return 0
    if args.corpus is None:
        parser.error("the corpus path is required")
    if args.quick:
        spec = transformer_spec(256, 16, 2, 1, 16)
        args.steps, args.batch, args.eval_every, args.val_windows = 12, 8, 6, 16
    else:
        with open(args.spec) as fh:
            spec = json.load(fh)
    d, heads, T = spec_sizes(spec)

    data = read_corpus(args.corpus)
    ids = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    cut = int(0.9 * len(ids))
    train, val = ids[:cut], ids[cut:]
    alphabet = np.unique(ids)
    unigram, bigram = baselines(train, val, alphabet)
    print(f"corpus {args.corpus}: {len(ids):,} bytes ({100 * np.mean(ids > 127):.3f} % non-ASCII), "
          f"{alphabet.size} distinct; train {len(train):,}, validation {len(val):,} (by position)")
    print(f"baselines on validation: unigram {unigram:.3f} bits/char, bigram {bigram:.3f} bits/char")

    n_val = min(args.val_windows, (len(val) - 1) // T)
    val_xy = windows(val, np.arange(n_val) * T, T)
    rng = np.random.default_rng(args.seed + 1)
    batches = [windows(train, rng.integers(0, len(train) - T, args.batch), T) for _ in range(args.steps)]
    params0 = F.init_params(spec, (T,), seed=args.seed)
    if args.bench:
        if args.threads is not None:
            if args.bench == "torch":
                import torch
                torch.set_num_threads(args.threads)
        with C.blas_threads(args.threads):
            times = bench(args.bench, spec, params0, heads, batches, args.lr)
        print(json.dumps({"framework": args.bench, "step_seconds": times[3:] or times}))
        return 0
    n_params = sum(v.size for v in params0.values())
    print(f"model: {(len(spec) - 4) // 2} pre-norm blocks, d {d}, {heads} heads, context {T}, "
          f"{n_params:,} params; {args.steps} Adam steps of {args.batch} windows, lr {args.lr}")

    with C.blas_threads(args.threads):
        params, f_curve, f_losses, f_times = train_funcnn(spec, params0, batches, val_xy, args.lr, args.eval_every)
        rows = [["funcnn", f_curve[-1][1], float(np.median(f_times[2:] or f_times)) * 1e3]]
        t_curve = t_losses = None
        if not args.no_torch:
            import torch
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            t_curve, t_losses, t_times = train_torch(spec, params0, heads, batches, val_xy, args.lr,
                                                     args.eval_every)
            rows.append(["PyTorch", t_curve[-1][1], float(np.median(t_times[2:] or t_times)) * 1e3])
    rows += [["unigram baseline", unigram, None], ["bigram baseline", bigram, None]]
    print(C.table(rows, ["model", "validation bits/char", "median step ms"]))
    if t_curve is not None:
        rel = f_curve[-1][1] / t_curve[-1][1] - 1
        print(f"funcnn vs PyTorch: final validation loss {100 * rel:+.4f} %, step time {rows[0][2] / rows[1][2]:.2f}x "
              f"({C.load_average()})")
    for prompt in (b"The ", b"Q: "):
        p = np.frombuffer(prompt, dtype=np.uint8).astype(np.int64)
        out = S.sample(spec, params, p, 20 if args.quick else 200, temperature=0.8, seed=args.seed)
        print(f"--- sample (temperature 0.8) after {prompt.decode()!r}:\n{decode(out)}\n")
    fig = C.figure_path(args, "char_transformer.png")
    if fig is not None and t_curve is not None:
        plot(fig, f_curve, t_curve, f_losses, t_losses, unigram, bigram)
        print(f"wrote {fig}")
    if args.save:
        F.save(args.save, spec, params, loss="softmax_cross_entropy", text={"encoding": "utf-8 bytes",
                                                                           "context": T})
        print(f"saved {args.save}; sample with: python scripts/sample_text.py {args.save} --prompt 'The '")
    return 0


if __name__ == "__main__":
    sys.exit(main())
