"""Checks that a checkpoint written by `medtune init` loads in transformers and gives the same
logits as `medtune logits` (f32), for each preset given.

    .venv/bin/python tools/check_init_interop.py --medtune target/release/medtune --preset tiny small

Prints one line per preset with the max |logit difference|; exits non-zero above 1e-4.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--medtune", default="target/release/medtune")
    ap.add_argument("--preset", nargs="+", default=["tiny"])
    ap.add_argument("--dtype", default="bf16", help="storage dtype given to medtune init")
    args = ap.parse_args()
    torch.manual_seed(0)
    ids = [1, 42, 7, 151_000, 3000, 9, 151_644, 12]
    worst = 0.0
    for preset in args.preset:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            out = Path(tmp) / "logits.safetensors"
            subprocess.run(
                [args.medtune, "init", "--preset", preset, "--out", str(model_dir),
                 "--seed", "3", "--dtype", args.dtype], check=True)
            subprocess.run(
                [args.medtune, "logits", "--model", str(model_dir), "--dtype", "f32",
                 "--ids", ",".join(map(str, ids)), "--out", str(out)], check=True)
            ours = load_file(out)["logits"]
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=torch.float32, attn_implementation="eager")
            with torch.no_grad():
                theirs = model(torch.tensor([ids])).logits[0]
            diff = (ours - theirs).abs().max().item()
            worst = max(worst, diff)
            print(f"{preset}: transformers loaded medtune init output; max |Δlogit| = {diff:.3e}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
