#!/usr/bin/env python
"""Sample text from a saved character model (one that scripts/char_transformer.py --save wrote).

    python scripts/sample_text.py model.npz --prompt "The " --n 300 --temperature 0.8 --seed 1

The model's ids are UTF-8 bytes (0..255); the prompt is encoded the same way. Each new byte is
drawn by :func:`funcnn.sequence.sample` (the last ``context`` ids in, the last position's logits
divided by the temperature; ``--temperature 0`` takes the most likely byte). The same seed gives
the same text.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import _common  # noqa: F401  (makes funcnn importable from a checkout)

import funcnn as F
from funcnn import sequence as S


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a model file (.npz) of a byte-level causal language model")
    ap.add_argument("--prompt", default="The ")
    ap.add_argument("--n", type=int, default=300, help="how many bytes to generate")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    model = F.load(args.model)
    spec, params = model["spec"], model["params"]
    if not (spec and spec[0].get("type") == "embedding" and int(spec[0]["vocab"]) == 256):
        raise SystemExit(f"{args.model}: not a byte-level language model (its first layer must be an "
                         "embedding with vocab 256)")
    prompt = np.frombuffer(args.prompt.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    if prompt.size == 0:
        raise SystemExit("--prompt must not be empty")
    ids = S.sample(spec, params, prompt, args.n, temperature=args.temperature, seed=args.seed)
    sys.stdout.write(bytes(ids.astype(np.uint8).tolist()).decode("utf-8", errors="replace") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
