#!/usr/bin/env python3
"""Write LoRA golden fixtures (PEFT adapter, one training step) on the tiny Qwen3 fixtures.

Usage (from the repository root, with the venv of tools/requirements.txt):

    .venv/bin/python tools/make_lora_fixtures.py

Reads the base checkpoints written by tools/make_fixtures.py (crates/model/tests/fixtures/<base>)
and writes crates/model/tests/fixtures/lora/step_<base>/ for each base in FIXTURES:

  adapter_model.safetensors, adapter_config.json, README.md
        exactly as `PeftModel.save_pretrained` writes them: r=4, lora_alpha=8, dropout 0,
        A initialised by PEFT (Kaiming-uniform), B then set to 0.05*randn (seeded) so that
        the adapter changes the logits and A gets non-zero gradients.
  batch.safetensors
        input_ids I64[2,10] (ids in 1..511, row 1 right-padded with 0 in its last 3 slots),
        attention_mask I64[2,10], labels I64[2,10] (= input_ids, -100 on the first 4
        "prompt" positions of each row and on padding).
  golden.safetensors
        loss F32[1] (transformers' causal-LM loss: shifted, mean over targets != -100),
        logits F32[2,10,512] (adapted model), base_logits F32[2,10,512] (adapter disabled),
        "<peft tensor name>.grad" F32 for every LoRA tensor (gradient of that loss).
  after_step.safetensors
        every LoRA tensor (PEFT names, F32) after ONE torch.optim.AdamW step on the LoRA
        parameters only (lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight_decay 0).
  golden.json
        loss, supervised token count, scaling, hyper-parameters, gradient magnitudes.

Goldens are computed from the adapter AS LOADED BACK from disk
(`PeftModel.from_pretrained(base, dir, is_trainable=True)` on a fresh f32 eager base).
Fixed seeds, CPU, 1 thread, PYTHONHASHSEED=0 (PEFT writes target_modules from a set), so two
runs give byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# PEFT writes `target_modules` from a Python set; fix the string hash seed so its order (and so
# adapter_config.json) is the same on every run.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import Qwen3ForCausalLM  # noqa: E402

VOCAB = 512
BATCH, SEQ = 2, 10
PROMPT_LEN = 4
PAD_LEN = 3  # right padding of row 1
PAD_ID = 0
B_STD = 0.05
ADAM = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

FIXTURES = {
    "tied_gqa": dict(
        seed=4101,
        lora=dict(
            r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        ),
    ),
    "untied_hd32": dict(
        seed=4202,
        lora=dict(
            r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            target_modules=["q_proj", "v_proj"],
            use_rslora=True,
            task_type="CAUSAL_LM",
        ),
    ),
}


def log(msg: str) -> None:
    print(msg, flush=True)


def load_base(path: str) -> Qwen3ForCausalLM:
    return Qwen3ForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")


def peft_name(param_name: str) -> str:
    """In-memory PEFT parameter name -> the name PEFT saves (adapter name stripped)."""
    for kind in ("lora_A", "lora_B"):
        in_mem = f".{kind}.default.weight"
        if param_name.endswith(in_mem):
            return param_name[: -len(in_mem)] + f".{kind}.weight"
    raise ValueError(f"not a LoRA parameter: {param_name}")


def make_batch(gen: torch.Generator) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, VOCAB, (BATCH, SEQ), generator=gen, dtype=torch.int64)
    mask = torch.ones_like(ids)
    ids[1, SEQ - PAD_LEN :] = PAD_ID
    mask[1, SEQ - PAD_LEN :] = 0
    labels = ids.clone()
    labels[:, :PROMPT_LEN] = -100
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def manual_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(shift_logits.double(), shift_labels, ignore_index=-100)


def make_fixture(name: str, spec: dict, fixtures_root: Path, out_root: Path) -> dict:
    base_dir = os.path.relpath(fixtures_root / name, REPO)  # recorded by PEFT as base_model_name_or_path
    out = out_root / f"step_{name}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cfg = LoraConfig(**spec["lora"])
    r, alpha = cfg.r, cfg.lora_alpha
    scaling = alpha / math.sqrt(r) if cfg.use_rslora else alpha / r

    # ---- build and save the adapter ---------------------------------------------------
    torch.manual_seed(spec["seed"])  # PEFT's Kaiming-uniform init of A uses the global RNG
    model = get_peft_model(load_base(base_dir), cfg)
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    lora_params = sorted((n, p) for n, p in model.named_parameters() if "lora_" in n)
    with torch.no_grad():
        for n, p in lora_params:
            if ".lora_B." in n:
                assert torch.count_nonzero(p) == 0, f"{n}: PEFT did not init B to zero"
                p.copy_(B_STD * torch.randn(p.shape, generator=gen))
    for module in model.modules():
        if hasattr(module, "scaling") and isinstance(module.scaling, dict) and "default" in module.scaling:
            assert abs(module.scaling["default"] - scaling) < 1e-12, (module.scaling, scaling)
    model.save_pretrained(out)
    in_memory = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    del model

    # ---- checks on what was written ---------------------------------------------------
    on_disk = load_file(out / "adapter_model.safetensors")
    assert set(on_disk) == set(in_memory), "saved keys differ from the PEFT state dict"
    for k, v in on_disk.items():
        assert k.startswith("base_model.model.model.layers.") and k.endswith(
            (".lora_A.weight", ".lora_B.weight")
        ), k
        assert v.dtype == torch.float32, f"{k}: {v.dtype}"
        assert torch.equal(v, in_memory[k]), f"{k} differs on disk"
    n_modules = len(cfg.target_modules) * load_base(base_dir).config.num_hidden_layers
    assert len(on_disk) == 2 * n_modules, (len(on_disk), n_modules)
    written_cfg = json.loads((out / "adapter_config.json").read_text())
    assert written_cfg["r"] == r and written_cfg["lora_alpha"] == alpha
    assert written_cfg["use_rslora"] == cfg.use_rslora
    assert set(written_cfg["target_modules"]) == set(spec["lora"]["target_modules"])

    # ---- load back from disk -----------------------------------------------------------
    bare = load_base(base_dir).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(load_base(base_dir), out, is_trainable=True)
    bad = [str(w.message) for w in caught if "adapter keys" in str(w.message)]
    assert not bad, bad
    loaded = get_peft_model_state_dict(model)
    assert set(loaded) == set(on_disk)
    for k, v in on_disk.items():
        assert torch.equal(loaded[k], v), f"{k} not loaded"
    model.train()  # every dropout is 0 (lora_dropout 0, attention_dropout 0)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, _ in trainable), [n for n, _ in trainable]
    assert {peft_name(n) for n, _ in trainable} == set(on_disk)

    # ---- one training batch ------------------------------------------------------------
    batch = make_batch(torch.Generator().manual_seed(spec["seed"] + 2))
    n_supervised = int((batch["labels"][:, 1:] != -100).sum())
    out_fw = model(**batch, use_cache=False)
    loss = out_fw.loss
    logits = out_fw.logits.detach().float()
    ref = manual_loss(logits, batch["labels"]).item()
    assert abs(loss.item() - ref) < 1e-5, (loss.item(), ref)
    loss.backward()
    grads = {peft_name(n): p.grad.detach().clone() for n, p in trainable}
    for k, g in grads.items():
        assert g.dtype == torch.float32 and g.shape == on_disk[k].shape
        assert torch.count_nonzero(g) == g.numel(), f"{k}: gradient has zeros"

    with torch.no_grad():
        with model.disable_adapter():
            base_logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                use_cache=False).logits.float()
        bare_logits = bare(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           use_cache=False).logits.float()
        again = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      use_cache=False).logits.float()
    assert (base_logits - bare_logits).abs().max().item() < 1e-5, "disable_adapter != bare base"
    assert (again - logits).abs().max().item() < 1e-5, "forward not reproducible"
    adapter_effect = (logits - base_logits).abs().max().item()
    assert adapter_effect > 1e-2, f"adapter changes logits by only {adapter_effect}"

    # Gradient checks on an f64 copy (sdpa attention; the loss recomputed in f64 because
    # transformers' loss casts logits to f32). Qwen3's RMSNorm still computes in f32, so:
    # (1) f64 autograd, per tensor, must match the f32 gradients to 1e-4 of that tensor's max;
    # (2) a central difference along a random direction (step 1e-4, large enough to swamp
    #     the f32 rounding of the norms) must match the f32 directional derivative to 5e-4.
    base64 = Qwen3ForCausalLM.from_pretrained(base_dir, dtype=torch.float64, attn_implementation="sdpa")
    m64 = PeftModel.from_pretrained(base64, out, is_trainable=True).double().train()
    p64 = {peft_name(n): p for n, p in m64.named_parameters() if p.requires_grad}

    def logits64():
        return m64(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   use_cache=False).logits

    manual_loss(logits64(), batch["labels"]).backward()
    grad64_rel = max(((p64[k].grad - g.double()).abs().max() / g.abs().max()).item()
                     for k, g in grads.items())
    assert grad64_rel < 1e-4, f"f32 gradients differ from f64 autograd by {grad64_rel}"

    dgen = torch.Generator().manual_seed(spec["seed"] + 3)
    dirs = {k: torch.randn(p.shape, generator=dgen, dtype=torch.float64) for k, p in p64.items()}
    eps = 1e-4

    def loss64(sign: float) -> float:
        with torch.no_grad():
            for k, p in p64.items():
                p.copy_(on_disk[k].double() + sign * eps * dirs[k])
            return manual_loss(logits64(), batch["labels"]).item()

    fd = (loss64(1.0) - loss64(-1.0)) / (2 * eps)
    analytic = sum((grads[k].double() * dirs[k]).sum().item() for k in grads)
    fd_rel = abs(fd - analytic) / max(abs(fd), 1e-12)
    assert fd_rel < 5e-4, f"gradient check failed: fd {fd} vs autograd {analytic}"
    del m64

    # ---- one AdamW step on the LoRA parameters only -------------------------------------
    opt = torch.optim.AdamW([p for _, p in trainable], **ADAM)
    opt.step()
    after = {k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    assert set(after) == set(on_disk)
    b1, b2 = ADAM["betas"]
    adam_max_diff = 0.0
    for k, g in grads.items():  # step 1 of Adam by hand (bias-corrected m and v)
        g = g.double()
        m_hat = (1 - b1) * g / (1 - b1)
        v_hat = (1 - b2) * g * g / (1 - b2)
        expect = on_disk[k].double() - ADAM["lr"] * m_hat / (v_hat.sqrt() + ADAM["eps"])
        adam_max_diff = max(adam_max_diff, (after[k].double() - expect).abs().max().item())
    assert adam_max_diff < 1e-6, adam_max_diff

    # ---- write --------------------------------------------------------------------------
    meta = {"generator": f"tools/make_lora_fixtures.py torch={torch.__version__} "
                         f"transformers={transformers.__version__} peft={peft.__version__}"}
    save_file({k: v.contiguous() for k, v in batch.items()}, out / "batch.safetensors", metadata=meta)
    golden = {
        "loss": loss.detach().float().reshape(1).contiguous(),
        "logits": logits.contiguous(),
        "base_logits": base_logits.contiguous(),
    }
    golden.update({f"{k}.grad": g.contiguous() for k, g in grads.items()})
    save_file(golden, out / "golden.safetensors", metadata=meta)
    save_file(after, out / "after_step.safetensors", metadata=meta)

    abs_grads = torch.cat([g.abs().flatten() for g in grads.values()])
    info = {
        "base_dir": f"../../{name}",  # relative to this folder
        "loss": loss.item(),
        "supervised_tokens": n_supervised,
        "r": r,
        "lora_alpha": alpha,
        "use_rslora": cfg.use_rslora,
        "scaling": scaling,
        "scaling_formula": "lora_alpha / sqrt(r)" if cfg.use_rslora else "lora_alpha / r",
        "target_modules": sorted(spec["lora"]["target_modules"]),
        "lora_tensors": len(on_disk),
        "b_init_std": B_STD,
        "adamw": {"lr": ADAM["lr"], "betas": list(ADAM["betas"]), "eps": ADAM["eps"],
                  "weight_decay": ADAM["weight_decay"], "steps": 1},
        "max_abs_grad": abs_grads.max().item(),
        "min_abs_grad": abs_grads.min().item(),
        "max_abs_logit_change_from_adapter": adapter_effect,
    }
    (out / "golden.json").write_text(json.dumps(info, indent=2) + "\n")

    per_tensor = {k: (g.abs().min().item(), g.abs().max().item()) for k, g in sorted(grads.items())}
    return {
        "name": name,
        **info,
        "grad_vs_f64_autograd_rel": grad64_rel,
        "grad_vs_central_difference_rel": fd_rel,
        "adam_vs_formula_max_diff": adam_max_diff,
        "max_abs_param_change": max((after[k] - on_disk[k]).abs().max().item() for k in after),
        "bytes": sum(f.stat().st_size for f in out.iterdir()),
        "files": sorted(f.name for f in out.iterdir()),
        "per_tensor_abs_grad_min_max": per_tensor,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=REPO / "crates/model/tests/fixtures",
                    help="folder holding the base fixtures (tools/make_fixtures.py --out)")
    ap.add_argument("--out", type=Path, default=None, help="default: <fixtures>/lora")
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES))
    args = ap.parse_args()
    fixtures_root = args.fixtures.resolve()
    out_root = (args.out or fixtures_root / "lora").resolve()

    os.chdir(REPO)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    out_root.mkdir(parents=True, exist_ok=True)
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    for name in args.only or FIXTURES:
        log(f"== {name}")
        log(json.dumps(make_fixture(name, FIXTURES[name], fixtures_root, out_root), indent=1))
    total = sum(f.stat().st_size for f in out_root.rglob("*") if f.is_file())
    log(f"total under {os.path.relpath(out_root, REPO)}: {total / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
