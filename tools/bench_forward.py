#!/usr/bin/env python3
"""Measure transformers' CPU inference speed on a randomly initialised Qwen3 of a preset shape.

    .venv/bin/python tools/bench_forward.py --preset small [--dtype f32|bf16] \
        [--prefill-tokens 128] [--decode-tokens 32] [--threads 2] [--json]

The reference numbers for the Rust engine. Nothing is downloaded: the model is built from a
local Qwen3Config with random weights (vocab 151936, tied embeddings, rope_theta 1e6,
rms_norm_eps 1e-6). Batch size is 1 and the prompt is random ids.

prefill tokens/s = prefill_tokens / median time of one forward pass over the whole prompt
                   (no KV cache, logits for every position), after 1 warm-up.
decode tokens/s  = decode_tokens / (T(generate decode_tokens+1 tokens) - T(generate 1 token)),
                   greedy, KV cache, min_new_tokens = max_new_tokens. Both generate calls do the
                   same prefill, so the difference is the time of decode_tokens cached decode steps.
                   Each T is the median of --repeats runs, after 1 warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

COMMON = dict(
    vocab_size=151936,
    tie_word_embeddings=True,
    rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    rms_norm_eps=1e-6,
    max_position_embeddings=40960,
    attention_bias=False,
    hidden_act="silu",
)

PRESETS = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, intermediate_size=128),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=32, intermediate_size=768),
    "qwen3-0.6b": dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, intermediate_size=3072),
    "qwen3-1.7b": dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, intermediate_size=6144),
}

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--prefill-tokens", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                    help="transformers attention implementation (default: sdpa, its default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    args = ap.parse_args()
    if args.prefill_tokens < 1 or args.decode_tokens < 1 or args.repeats < 1:
        ap.error("--prefill-tokens, --decode-tokens and --repeats must be >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    transformers.logging.set_verbosity_error()
    dtype = DTYPES[args.dtype]

    config = Qwen3Config(**COMMON, **PRESETS[args.preset])
    config._attn_implementation = args.attn
    t_build = time.perf_counter()
    model = Qwen3ForCausalLM(config).to(dtype).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    n_params = sum(p.numel() for p in model.parameters())
    log(f"built {args.preset} ({n_params / 1e6:.1f}M params, {args.dtype}, attn={args.attn}) "
        f"in {time.perf_counter() - t_build:.1f}s; torch {torch.__version__}, "
        f"transformers {transformers.__version__}, threads {torch.get_num_threads()}")

    gen = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, config.vocab_size, (1, args.prefill_tokens), generator=gen)
    mask = torch.ones_like(ids)

    def prefill():
        # Next-token logits only, as generation's prefill does (medtune's bench measures the same).
        model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)

    def generate(n: int):
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=n, min_new_tokens=n, eos_token_id=None,
                             pad_token_id=0)
        assert out.shape[1] == ids.shape[1] + n, out.shape

    with torch.inference_mode():
        prefill()  # warm-up
        t_prefill = statistics.median(timed(prefill) for _ in range(args.repeats))
        log(f"prefill {args.prefill_tokens} tokens: {t_prefill * 1e3:.1f} ms (median of {args.repeats})")

        n = args.decode_tokens
        generate(n + 1)  # warm-up
        t_one = statistics.median(timed(lambda: generate(1)) for _ in range(args.repeats))
        t_many = statistics.median(timed(lambda: generate(n + 1)) for _ in range(args.repeats))
        t_decode = max(t_many - t_one, 1e-9)
        log(f"generate 1: {t_one * 1e3:.1f} ms, generate {n + 1}: {t_many * 1e3:.1f} ms "
            f"-> {t_decode / n * 1e3:.2f} ms per decoded token")

    result = {
        "engine": "transformers",
        "preset": args.preset,
        "dtype": args.dtype,
        "threads": args.threads,
        "prefill_tokens": args.prefill_tokens,
        "decode_tokens": args.decode_tokens,
        "prefill_tokens_per_s": round(args.prefill_tokens / t_prefill, 2),
        "decode_tokens_per_s": round(n / t_decode, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
