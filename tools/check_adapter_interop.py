#!/usr/bin/env python3
"""Checks that a LoRA adapter folder loads in PEFT and gives the logits another tool computed.

    .venv/bin/python tools/check_adapter_interop.py --base MODEL_DIR --adapter ADAPTER_DIR \\
        --ids 1,2,3 --logits logits.safetensors

MODEL_DIR is a transformers Qwen3 checkpoint (loaded in float32, eager attention), ADAPTER_DIR a
PEFT LoRA folder (adapter_config.json + adapter_model.safetensors), and logits.safetensors holds
`logits` F32 [seq, vocab] (a leading batch dim of 1 is accepted) for the ids, as
`medtune logits --adapter` writes it.

Fails (exit 1) when:
  * PEFT's load result has missing or unexpected adapter keys, or the key set of
    adapter_model.safetensors differs from the LoRA tensors PEFT built from adapter_config.json
    (a wrong name prefix loads with at most a warning and the adapter then does nothing);
  * a loaded LoRA tensor differs from the file;
  * the adapter changes the logits of the bare base model by less than --min-effect (an adapter
    that is silently ignored, or all-zero B);
  * max |PEFT logits - given logits| > --tol (1e-4).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import transformers
from peft import PeftModel
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

CHECK_NAME = "interop_check"


def load_base(path: str):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


@torch.no_grad()
def logits_of(model, ids: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="base model folder (transformers checkpoint)")
    ap.add_argument("--adapter", required=True, help="PEFT LoRA adapter folder")
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--logits", required=True, type=Path, help="safetensors file with `logits` [seq, vocab]")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--min-effect", type=float, default=1e-3,
                    help="least max |adapted - base| logit change that counts as 'adapter applied'")
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)

    ids = [int(t) for t in args.ids.split(",") if t.strip()]
    failures: list[str] = []

    base = load_base(args.base)
    vocab = base.config.vocab_size
    if not ids or not all(0 <= t < vocab for t in ids):
        print(f"error: ids must be non-empty and in [0, {vocab})", file=sys.stderr)
        return 2
    bare = logits_of(base, ids)

    adapter_dir = Path(args.adapter)
    file_tensors = load_file(adapter_dir / "adapter_model.safetensors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, adapter_dir)
    for w in caught:
        if "adapter keys" in str(w.message):
            failures.append(f"PEFT warned while loading: {w.message}")

    # PEFT's own load result (from_pretrained only warns about missing keys and drops the
    # unexpected ones): load the same folder a second time under another adapter name.
    result = model.load_adapter(adapter_dir, adapter_name=CHECK_NAME)
    if result.missing_keys:
        failures.append(f"PEFT load result: {len(result.missing_keys)} missing keys, "
                        f"e.g. {result.missing_keys[:3]}")
    if result.unexpected_keys:
        failures.append(f"PEFT load result: {len(result.unexpected_keys)} unexpected keys, "
                        f"e.g. {result.unexpected_keys[:3]}")
    model.set_adapter("default")
    model.delete_adapter(CHECK_NAME)

    # Key sets: what the file holds vs the LoRA tensors PEFT built from adapter_config.json
    # (same names as PEFT's save_pretrained would write).
    built = get_peft_model_state_dict(model, adapter_name="default")
    unmatched = sorted(set(file_tensors) - set(built))
    not_in_file = sorted(set(built) - set(file_tensors))
    if unmatched:
        failures.append(f"{len(unmatched)} adapter tensors match no module, e.g. {unmatched[:3]}")
    if not_in_file:
        failures.append(f"{len(not_in_file)} LoRA tensors missing from the file, e.g. {not_in_file[:3]}")
    for k in sorted(set(file_tensors) & set(built)):
        got, want = built[k].float(), file_tensors[k].float()
        if got.shape != want.shape or not torch.equal(got, want):
            failures.append(f"{k}: loaded tensor differs from the file")
    print(f"adapter: {len(file_tensors)} tensors in file, {len(built)} LoRA tensors built by PEFT, "
          f"{len(set(file_tensors) & set(built))} matched")

    adapted = logits_of(model, ids)
    with model.disable_adapter():
        disabled = logits_of(model, ids)
    if not torch.equal(disabled, bare):
        failures.append("logits with the adapter disabled differ from the bare base model")
    effect = (adapted - bare).abs().max().item()
    print(f"max |PEFT adapted - bare base| = {effect:.3e}")
    if effect < args.min_effect:
        failures.append(f"adapter changes the logits by only {effect:.3e} (< {args.min_effect})")

    theirs = load_file(args.logits)
    if "logits" not in theirs:
        failures.append(f"{args.logits}: no `logits` tensor (has {sorted(theirs)})")
    else:
        given = theirs["logits"].float()
        if given.dim() == 3 and given.shape[0] == 1:
            given = given[0]
        if tuple(given.shape) != tuple(adapted.shape):
            failures.append(f"logits shape {tuple(given.shape)}, expected {tuple(adapted.shape)}")
        else:
            diff = (given - adapted).abs().max().item()
            given_effect = (given - bare).abs().max().item()
            print(f"max |given - bare base| = {given_effect:.3e}")
            print(f"max |given - PEFT adapted| = {diff:.3e} (tol {args.tol:g})")
            if not diff <= args.tol:
                failures.append(f"logits differ from PEFT's by {diff:.3e} > {args.tol:g}")

    for f in failures:
        print(f"FAIL: {f}")
    print("OK" if not failures else f"{len(failures)} check(s) failed")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
