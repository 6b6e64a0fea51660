"""PyTorch + PEFT LoRA training step on a random Qwen3 of a medtune preset shape, the peer of
`medtune bench train` (same shapes, batch, sequence length, LoRA settings, f32, AdamW, loss on the
last `answer_tokens` positions). By default the logits are computed only at those positions
(`logits_to_keep`), PEFT's best case; `--full-logits` computes them everywhere as a plain
TRL/Trainer loop does.

    .venv/bin/python tools/bench_train.py --preset small --json
"""

import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import Qwen3Config, Qwen3ForCausalLM

PRESETS = {  # hidden, layers, heads, kv heads, head_dim, intermediate (as medtune's presets)
    "tiny": (64, 2, 4, 2, 16, 128),
    "small": (256, 4, 8, 4, 32, 768),
    "qwen3-0.6b": (1024, 28, 16, 8, 128, 3072),
    "qwen3-1.7b": (2048, 28, 16, 8, 128, 6144),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small", choices=PRESETS)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--answer-tokens", type=int, default=32)
    ap.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full-logits", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h, layers, nh, nkv, hd, ffn = PRESETS[args.preset]
    batch = args.batch_size or (2 if args.preset in ("tiny", "small") else 1)
    config = Qwen3Config(vocab_size=151936, hidden_size=h, num_hidden_layers=layers,
                         num_attention_heads=nh, num_key_value_heads=nkv, head_dim=hd,
                         intermediate_size=ffn, tie_word_embeddings=True, rope_theta=1e6,
                         rms_norm_eps=1e-6, max_position_embeddings=40960)
    model = Qwen3ForCausalLM(config).float()
    model.config._attn_implementation = "sdpa"
    lora = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                      target_modules=args.targets.split(","), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 151643, (batch, args.seq_len))
    answer = args.answer_tokens
    times = []
    for step in range(args.steps + 2):
        start = time.perf_counter()
        if args.full_logits:
            logits = model(input_ids=ids).logits[:, -answer - 1:-1]
        else:
            logits = model(input_ids=ids, logits_to_keep=answer + 1).logits[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                               ids[:, -answer:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - start)
    s_per_step = statistics.median(times)
    result = {
        "engine": "pytorch+peft" + (" (full logits)" if args.full_logits else ""),
        "preset": args.preset, "dtype": "f32", "batch_size": batch, "seq_len": args.seq_len,
        "answer_tokens": answer, "trainable_params": trainable,
        "tokens_per_s": batch * args.seq_len / s_per_step, "s_per_step": s_per_step,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result) if args.json else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
