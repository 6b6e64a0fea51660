#!/usr/bin/env python3
"""Measure transformers' loglik evaluation speed (questions/s) on a random Qwen3 of a preset shape,
doing the same work as `medtune bench eval`.

    .venv/bin/python tools/bench_eval.py --preset small [--dtype f32|bf16] [--questions 32] \
        [--batch-size 8] [--threads 2] [--json]

Work per question, as lm-eval-harness and `medtune eval --mode loglik` do it: the prompt
(180-299 random token ids, length 180 + (i * 37) % 120 for question i, the formula medtune
uses) is left-padded into batches of --batch-size (formed as `medtune eval` forms them: within
windows of 8 batches the questions are sorted longest first, as lm-eval-harness sorts; --no-sort
keeps question order), one forward pass per batch with an attention
mask and position ids that skip the padding, next-token logits at the last position only
(`logits_to_keep=1`), and a softmax over the four option-letter ids. One warm-up batch, then
one timed pass over all questions. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

from bench_forward import COMMON, DTYPES, PRESETS, log

LETTER_IDS = [362, 425, 356, 422]  # Qwen3's " A", " B", " C", " D"


def prompt_len(i: int) -> int:
    return 180 + (i * 37) % 120


WINDOW_BATCHES = 8  # medtune_eval::batching::WINDOW_BATCHES


def length_sorted_batches(lengths: list[int], batch: int) -> list[list[int]]:
    """medtune_eval::batching::length_sorted_batches: sort (longest first, stable) within windows."""
    window = batch * WINDOW_BATCHES
    out = []
    for start in range(0, len(lengths), window):
        w = sorted(range(start, min(start + window, len(lengths))), key=lambda i: -lengths[i])
        out.extend(w[i:i + batch] for i in range(0, len(w), batch))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-sort", action="store_true", help="batch in question order")
    ap.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    transformers.logging.set_verbosity_error()
    config = Qwen3Config(**COMMON, **PRESETS[args.preset])
    config._attn_implementation = "sdpa"
    model = Qwen3ForCausalLM(config).to(DTYPES[args.dtype]).eval()
    log(f"built {args.preset} ({args.dtype}); torch {torch.__version__}, "
        f"transformers {transformers.__version__}, threads {torch.get_num_threads()}")
    gen = torch.Generator().manual_seed(args.seed + 1)
    letters = torch.tensor(LETTER_IDS)

    def prompts(n: int) -> list[torch.Tensor]:
        return [torch.randint(0, 151_643, (prompt_len(i),), generator=gen) for i in range(n)]

    def score(batch: list[torch.Tensor]) -> torch.Tensor:
        t = max(len(p) for p in batch)
        ids = torch.zeros((len(batch), t), dtype=torch.long)
        mask = torch.zeros((len(batch), t), dtype=torch.long)
        for r, p in enumerate(batch):
            ids[r, t - len(p):] = p
            mask[r, t - len(p):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                       use_cache=False, logits_to_keep=1).logits[:, -1, :].float()
        return torch.softmax(logits[:, letters], dim=-1)

    b = args.batch_size
    warmup = prompts(b)
    timed = prompts(args.questions)
    with torch.inference_mode():
        score(warmup)
        if args.no_sort:
            batches = [list(range(i, min(i + b, len(timed)))) for i in range(0, len(timed), b)]
        else:
            batches = length_sorted_batches([len(p) for p in timed], b)
        t0 = time.perf_counter()
        scored = 0
        for idx in batches:
            scored += score([timed[i] for i in idx]).shape[0]
        seconds = time.perf_counter() - t0
    result = {
        "engine": "transformers",
        "preset": args.preset,
        "dtype": args.dtype,
        "threads": args.threads,
        "questions": scored,
        "batch_size": b,
        "length_sorted": not args.no_sort,
        "prompt_tokens": sum(len(p) for p in timed),
        "seconds": round(seconds, 3),
        "questions_per_s": round(scored / seconds, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>16}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
