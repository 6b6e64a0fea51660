#!/usr/bin/env python3
"""Write golden fixtures for tiny, randomly initialised Qwen3 checkpoints.

Usage (from the repository root, with the venv of tools/requirements.txt):

    .venv/bin/python tools/make_fixtures.py --out crates/model/tests/fixtures

For each fixture it builds a `Qwen3ForCausalLM` from a local `Qwen3Config` (no hub access),
perturbs every RMSNorm weight to `1 + 0.3 * randn` (transformers initialises them to 1.0,
which would hide a norm that is never applied), saves the checkpoint with `save_pretrained`,
then LOADS IT BACK FROM DISK and computes the golden values from that reload, so the Rust
side and Python see exactly the same bytes.

Per fixture directory:
  config.json, generation_config.json, model*.safetensors[, model.safetensors.index.json]
  golden.safetensors: input_ids I64[16], logits_f32 F32[16,V], logits_bf16 F32[16,V],
                      batch_input_ids I64[3,12], batch_attention_mask I64[3,12] (left padding,
                      real lengths 12/7/4, pad id 0), batch_logits_f32 F32[3,12,V]
  greedy.json:        {"prompt_ids": [8 ids], "new_ids": [20 ids], "min_margin": float, ...}

Everything is deterministic (fixed seeds, CPU, eager attention, 1 thread).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Qwen3Config, Qwen3ForCausalLM

VOCAB = 512
SEQ = 16
BATCH_LEN = 12
BATCH_REAL_LENGTHS = (12, 7, 4)
PAD_ID = 0
PROMPT_LEN = 8
NEW_TOKENS = 20
MIN_MARGIN = 1e-3
PROMPT_CANDIDATES = 64
PREFERRED_MARGIN = 1e-2
INIT_STD = 0.1
NORM_STD = 0.3

COMMON = dict(
    vocab_size=VOCAB,
    attention_bias=False,
    rms_norm_eps=1e-6,
    max_position_embeddings=512,
    initializer_range=INIT_STD,
    hidden_act="silu",
)

FIXTURES = {
    # GQA (2 query heads per kv head), tied embeddings, bf16 weights, config.json as
    # transformers 5 writes it (rope_parameters, dtype).
    "tied_gqa": dict(
        seed=1001,
        config=dict(
            hidden_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=128,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
            tie_word_embeddings=True,
        ),
        save_dtype=torch.bfloat16,
        max_shard_size=None,
        config_style="transformers5",
    ),
    # head_dim (32) != hidden/heads (8), separate lm_head, bf16 weights, config.json rewritten
    # into the transformers 4.51 hub style (top-level rope_theta, torch_dtype).
    "untied_hd32": dict(
        seed=2002,
        config=dict(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=8,
            num_key_value_heads=2,
            head_dim=32,
            intermediate_size=96,
            rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
            tie_word_embeddings=False,
        ),
        save_dtype=torch.bfloat16,
        max_shard_size=None,
        config_style="hub_4_51",
    ),
    # Plain multi-head attention (kv heads == heads), 3 layers, f32 weights, sharded checkpoint
    # with model.safetensors.index.json.
    "mha_sharded": dict(
        seed=3003,
        config=dict(
            hidden_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            head_dim=12,
            intermediate_size=64,
            rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
            tie_word_embeddings=True,
        ),
        save_dtype=torch.float32,
        max_shard_size="120KB",
        config_style="transformers5",
    ),
}

# Key order and fixed values of the hub's Qwen/Qwen3-0.6B config.json (transformers 4.51).
HUB_KEYS = [
    "architectures",
    "attention_bias",
    "attention_dropout",
    "bos_token_id",
    "eos_token_id",
    "head_dim",
    "hidden_act",
    "hidden_size",
    "initializer_range",
    "intermediate_size",
    "max_position_embeddings",
    "max_window_layers",
    "model_type",
    "num_attention_heads",
    "num_hidden_layers",
    "num_key_value_heads",
    "rms_norm_eps",
    "rope_scaling",
    "rope_theta",
    "sliding_window",
    "tie_word_embeddings",
    "torch_dtype",
    "transformers_version",
    "use_cache",
    "use_sliding_window",
    "vocab_size",
]

NORM_SUFFIXES = (
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
    "self_attn.q_norm.weight",
    "self_attn.k_norm.weight",
)


def log(msg: str) -> None:
    print(msg, flush=True)


def is_norm(name: str) -> bool:
    return name == "model.norm.weight" or name.endswith(NORM_SUFFIXES)


def build_model(spec: dict) -> Qwen3ForCausalLM:
    torch.manual_seed(spec["seed"])
    config = Qwen3Config(**COMMON, **spec["config"])
    model = Qwen3ForCausalLM(config).float().eval()
    gen = torch.Generator().manual_seed(spec["seed"] + 7)
    n_norms = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if is_norm(name):
                p.copy_(1.0 + NORM_STD * torch.randn(p.shape, generator=gen))
                n_norms += 1
    expected = 4 * config.num_hidden_layers + 1
    assert n_norms == expected, f"perturbed {n_norms} norms, expected {expected}"
    # Never stop early on an end-of-sequence token: the greedy golden needs all 20 tokens.
    model.generation_config.eos_token_id = None
    model.generation_config.bos_token_id = None
    model.generation_config.pad_token_id = None
    return model


def rewrite_config_hub_4_51(path: Path) -> None:
    """Rewrite a transformers-5 config.json into the transformers 4.51 hub layout."""
    cfg = json.loads(path.read_text())
    rope = cfg["rope_parameters"]
    assert rope.get("rope_type", "default") == "default", rope
    theta = rope["rope_theta"]
    values = dict(cfg)
    values["architectures"] = ["Qwen3ForCausalLM"]
    values["rope_scaling"] = None
    values["rope_theta"] = int(theta) if float(theta).is_integer() else theta
    values["torch_dtype"] = "bfloat16"
    values["transformers_version"] = "4.51.0"
    values["sliding_window"] = None
    values["use_sliding_window"] = False
    out = {k: values[k] for k in HUB_KEYS}
    path.write_text(json.dumps(out, indent=2) + "\n")
    # The real theta may equal transformers' default, so prove the top-level key is read.
    probe = Qwen3Config.from_dict({**out, "rope_theta": 12345})
    assert probe.rope_parameters["rope_theta"] == 12345, probe.rope_parameters
    assert Qwen3Config.from_pretrained(path).dtype == torch.bfloat16


def load(path: Path, dtype: torch.dtype) -> Qwen3ForCausalLM:
    model = Qwen3ForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager")
    return model.eval()


@torch.no_grad()
def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids.unsqueeze(0), use_cache=False).logits[0].float()


def make_batch(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(BATCH_REAL_LENGTHS), BATCH_LEN), PAD_ID, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(BATCH_REAL_LENGTHS):
        ids[row, BATCH_LEN - n :] = torch.randint(1, VOCAB, (n,), generator=gen)
        mask[row, BATCH_LEN - n :] = 1
    return ids, mask


@torch.no_grad()
def batch_logits(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Position ids as generate() builds them for left padding: real tokens count from 0.
    # (RoPE is relative and padded keys are masked, so the real positions' logits are the
    # same as with plain 0..L-1 positions, up to rounding.)
    pos = mask.cumsum(-1) - 1
    pos = pos.masked_fill(mask == 0, 1)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    return out.logits.float()


@torch.no_grad()
def greedy(model, prompt: torch.Tensor, check_cache_free: bool) -> tuple[list[int], float, list[float]]:
    ids = prompt.unsqueeze(0)
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        eos_token_id=None,
        pad_token_id=PAD_ID,
        output_logits=True,
        return_dict_in_generate=True,
    )
    new_ids = out.sequences[0, ids.shape[1] :].tolist()
    assert len(new_ids) == NEW_TOKENS, new_ids
    margins = []
    for step, step_logits in enumerate(out.logits):
        top = torch.topk(step_logits[0].float(), 2)
        assert top.indices[0].item() == new_ids[step]
        margins.append(float(top.values[0] - top.values[1]))
    if not check_cache_free:
        return new_ids, min(margins), margins
    # Cross-check against a cache-free greedy loop (full forward each step).
    seq = prompt.clone()
    for step in range(NEW_TOKENS):
        nxt = int(logits_of(model, seq)[-1].argmax())
        assert nxt == new_ids[step], f"cache-free greedy differs at step {step}"
        seq = torch.cat([seq, torch.tensor([nxt])])
    return new_ids, min(margins), margins


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def make_fixture(name: str, spec: dict, out_root: Path) -> dict:
    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    model = build_model(spec)
    model.to(spec["save_dtype"])
    kwargs = {}
    if spec["max_shard_size"] is not None:
        kwargs["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(out, **kwargs)
    if spec["config_style"] == "hub_4_51":
        rewrite_config_hub_4_51(out / "config.json")
    written_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    del model

    # ---- checks on what was written -------------------------------------------------
    cfg = json.loads((out / "config.json").read_text())
    shards = sorted(out.glob("model*.safetensors"))
    on_disk = {}
    for shard in shards:
        on_disk.update(load_file(shard))
    if spec["max_shard_size"] is not None:
        assert len(shards) >= 2, f"{name}: expected >= 2 shards, got {shards}"
        index = json.loads((out / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"]) == set(on_disk), f"{name}: index does not match shards"
    else:
        assert [s.name for s in shards] == ["model.safetensors"], shards
    tied = spec["config"]["tie_word_embeddings"]
    assert ("lm_head.weight" in on_disk) == (not tied), f"{name}: lm_head presence wrong"
    for k, v in on_disk.items():
        assert v.dtype == spec["save_dtype"], f"{name}: {k} saved as {v.dtype}"
        assert torch.equal(v, written_state[k]), f"{name}: {k} differs on disk"
    norm_names = [k for k in on_disk if is_norm(k)]
    for k in norm_names:
        assert on_disk[k].float().std() > 0.05, f"{name}: norm {k} not perturbed"

    # ---- load back from disk, compute goldens ----------------------------------------
    m32 = load(out, torch.float32)
    theta = spec["config"]["rope_parameters"]["rope_theta"]
    assert m32.config.rope_parameters["rope_theta"] == theta, (
        f"{name}: transformers read rope_theta {m32.config.rope_parameters} from config.json"
    )
    assert m32.config.head_dim == spec["config"]["head_dim"]
    for k, v in m32.state_dict().items():
        if k in on_disk:
            assert torch.equal(v, on_disk[k].float()), f"{name}: reload of {k} differs"

    gen = torch.Generator().manual_seed(spec["seed"] + 100)
    input_ids = torch.randint(0, VOCAB, (SEQ,), generator=gen)
    input_ids[0], input_ids[-1] = 0, VOCAB - 1  # cover both ends of the embedding table
    logits_f32 = logits_of(m32, input_ids)

    b_ids, b_mask = make_batch(gen)
    b_logits = batch_logits(m32, b_ids, b_mask)
    # Real positions of each padded row must match that row run alone.
    batch_row_max_diff = 0.0
    for row, n in enumerate(BATCH_REAL_LENGTHS):
        alone = logits_of(m32, b_ids[row, BATCH_LEN - n :])
        d = (alone - b_logits[row, BATCH_LEN - n :]).abs().max().item()
        batch_row_max_diff = max(batch_row_max_diff, d)
    assert batch_row_max_diff < 1e-4, f"{name}: padded batch differs from rows alone: {batch_row_max_diff}"

    # Greedy golden: random models easily fall into repeating one token, which would make a
    # weak test. Of PROMPT_CANDIDATES seeded prompts, prefer those whose smallest top-1/top-2
    # logit gap over the 20 steps is >= PREFERRED_MARGIN (far above f32 rounding noise),
    # among them the one with the most distinct new tokens, then the largest gap.
    prompt_gen = torch.Generator().manual_seed(spec["seed"] + 200)
    best_key, best = None, None
    for attempt in range(PROMPT_CANDIDATES):
        cand = torch.randint(0, VOCAB, (PROMPT_LEN,), generator=prompt_gen)
        cand_ids, cand_margin, cand_margins = greedy(m32, cand, check_cache_free=False)
        key = (cand_margin >= PREFERRED_MARGIN, len(set(cand_ids)), cand_margin)
        if best_key is None or key > best_key:
            best_key, best = key, (cand, cand_ids, cand_margin, cand_margins, attempt)
    prompt, new_ids, min_margin, margins, attempt = best
    if min_margin < MIN_MARGIN:
        raise SystemExit(f"{name}: no prompt with min_margin >= {MIN_MARGIN} (best {min_margin})")
    assert greedy(m32, prompt, check_cache_free=True)[0] == new_ids

    # ---- sanity checks ----------------------------------------------------------------
    # 1. An independent reload gives bit-identical logits.
    again = load(out, torch.float32)
    reload_diff = (logits_of(again, input_ids) - logits_f32).abs().max().item()
    assert reload_diff == 0.0, f"{name}: independent reload differs by {reload_diff}"
    # 2. Every kind of norm matters: resetting its weights to 1 or zeroing one changes logits.
    norm_effects = {}
    kinds = {
        "input_layernorm": "layers.0.input_layernorm.weight",
        "post_attention_layernorm": "layers.0.post_attention_layernorm.weight",
        "q_norm": "layers.0.self_attn.q_norm.weight",
        "k_norm": "layers.0.self_attn.k_norm.weight",
        "final_norm": "norm.weight",
    }
    for kind, pname in kinds.items():
        p = again.model.get_parameter(pname)
        saved = p.detach().clone()
        with torch.no_grad():
            p.fill_(1.0)
            to_one = (logits_of(again, input_ids) - logits_f32).abs().max().item()
            p.copy_(saved)
            p[0] = 0.0
            zero_one = (logits_of(again, input_ids) - logits_f32).abs().max().item()
            p.copy_(saved)
        assert to_one > 1e-2, f"{name}: resetting {kind} to 1.0 changes logits by only {to_one}"
        assert zero_one > 1e-4, f"{name}: zeroing {kind}[0] changes logits by only {zero_one}"
        norm_effects[kind] = round(to_one, 4)
    del again

    m16 = load(out, torch.bfloat16)
    logits_bf16 = logits_of(m16, input_ids)
    del m16

    save_file(
        {
            "input_ids": input_ids.to(torch.int64).contiguous(),
            "logits_f32": logits_f32.contiguous(),
            "logits_bf16": logits_bf16.contiguous(),
            "batch_input_ids": b_ids.contiguous(),
            "batch_attention_mask": b_mask.contiguous(),
            "batch_logits_f32": b_logits.contiguous(),
        },
        out / "golden.safetensors",
        # One key only: safetensors writes metadata from a hash map, so several keys
        # would come out in varying order and the file would not be byte-reproducible.
        metadata={
            "generator": f"tools/make_fixtures.py torch={torch.__version__} "
            f"transformers={transformers.__version__}"
        },
    )
    (out / "greedy.json").write_text(
        json.dumps(
            {
                "prompt_ids": prompt.tolist(),
                "new_ids": new_ids,
                "min_margin": min_margin,
                "prompt_candidate": attempt,
                "step_margins": [round(m, 6) for m in margins],
            },
            indent=2,
        )
        + "\n"
    )

    top2 = torch.topk(logits_f32, 2, dim=-1).values
    return {
        "name": name,
        "files": sorted(f.name for f in out.iterdir()),
        "shards": len(shards),
        "bytes": dir_size(out),
        "config_keys_rope": [k for k in cfg if k.startswith("rope")],
        "dtype_key": {k: cfg[k] for k in ("dtype", "torch_dtype") if k in cfg},
        "logits_std": round(logits_f32.std().item(), 4),
        "min_position_top1_gap_f32": round((top2[:, 0] - top2[:, 1]).min().item(), 5),
        "max_abs_bf16_vs_f32": round((logits_bf16 - logits_f32).abs().max().item(), 4),
        "argmax_agree_bf16_vs_f32": int(
            (logits_bf16.argmax(-1) == logits_f32.argmax(-1)).sum().item()
        ),
        "batch_rows_vs_alone_max_diff": batch_row_max_diff,
        "greedy_min_margin": round(min_margin, 5),
        "greedy_distinct_new_ids": len(set(new_ids)),
        "reload_max_diff": reload_diff,
        "norm_reset_effect": norm_effects,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("crates/model/tests/fixtures"))
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES), help="subset of fixtures")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    transformers.logging.set_verbosity_error()

    args.out.mkdir(parents=True, exist_ok=True)
    log(f"torch {torch.__version__}, transformers {transformers.__version__}")
    summaries = []
    for name in args.only or FIXTURES:
        log(f"== {name}")
        s = make_fixture(name, FIXTURES[name], args.out)
        summaries.append(s)
        log(json.dumps(s, indent=1))
    log("\nsummary:")
    for s in summaries:
        log(
            f"  {s['name']:<12} {s['bytes'] / 1024:7.1f} KiB  shards={s['shards']}  "
            f"greedy_min_margin={s['greedy_min_margin']}  "
            f"distinct_new={s['greedy_distinct_new_ids']}  logits_std={s['logits_std']}  "
            f"bf16_vs_f32_max={s['max_abs_bf16_vs_f32']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
