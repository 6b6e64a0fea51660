#!/usr/bin/env python3
"""Write golden chat/prompt-completion loss masks made by TRL's own SFTTrainer code path.

Purpose: medtune decides which tokens of a training example carry the loss (assistant turns of a
conversation, the completion of a prompt-completion pair). This script records, for each test case
in `crates/text/tests/fixtures/chat_masks/cases.jsonl`, exactly what TRL's `SFTTrainer` trains on,
so that the Rust implementation can be checked token for token against it.

Nothing is re-implemented here. For each case the script builds a real `trl.SFTTrainer` on a tiny,
randomly initialised `Qwen3ForCausalLM` made from a `Qwen3Config` in code (no download), with the
real Qwen3 tokenizer from `$MEDTUNE_SHARED/tokenizers/qwen3` (default `../shared` relative to the
repository root), a one-row `datasets.Dataset` holding the case, and

    SFTConfig(chat_template_path=<trl>/chat_templates/qwen3_training.jinja,
              assistant_only_loss=True,  completion_only_loss=False)   # {"messages": ...}
    SFTConfig(chat_template_path=<trl>/chat_templates/qwen3_training.jinja,
              assistant_only_loss=False, completion_only_loss=True)    # {"prompt", "completion"}

with `max_length=None` (no truncation), `packing=False`, `padding_free=False`. TRL's dataset
preparation (`SFTTrainer._prepare_dataset`: EOS appended to plain-text completions, tokenisation via
`apply_chat_template(..., return_assistant_tokens_mask=...)`, prompt/completion split by common
prefix, `labels` built from `assistant_masks` / `completion_mask`) produces `input_ids` and
`labels`; the script then passes that one row through the trainer's own data collator
(`DataCollatorForLanguageModeling`, batch of one, so no padding) and records the collator's
`input_ids` and `labels` (-100 = no loss; labels are not shifted, the model shifts them).

Why the template is passed explicitly: TRL swaps in `qwen3_training.jinja` by itself only when the
tokenizer's template is byte-equal to one it knows (`trl.chat_template_utils.get_training_chat_template`).
The template in shared/ is the original Qwen3 release's, which differs slightly from TRL's copy
(`trl/chat_templates/qwen3.jinja`), so TRL would raise instead. `SFTConfig.chat_template_path`
pointing at a `.jinja` file makes `SFTTrainer.__init__` set it as the tokenizer's chat template;
since it has `{% generation %}` markers TRL then uses it as is, for both conversations and
conversational prompt-completion pairs.

Outputs (in --out, default crates/text/tests/fixtures/chat_masks):
  trl_golden.jsonl       one line per case: {"name", "loss", "text", "input_ids", "labels"}
                         ("loss" is "assistant_only" or "completion_only"; "text" is what was tokenised)
  qwen3_training.jinja   byte-for-byte copy of TRL's template (provenance in README.md there)

Each case is also checked: the rendered text re-tokenises to the same ids, and for conversational
prompt-completion cases the labels are compared with what assistant_only_loss=True would add
(printed, not recorded). The supervised spans are printed, decoded, for the README.

Usage, from the repository root (pins in tools/requirements-trl.txt):

    python3 -m venv target/trl-venv
    target/trl-venv/bin/pip install -r tools/requirements-trl.txt
    target/trl-venv/bin/python tools/make_chat_masks.py

Pinned versions: trl==1.16.0, transformers==5.24.0, torch==2.15.0 (datasets as pulled by trl).
The script refuses to run with other trl/transformers versions unless --any-version is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

PINNED = {"trl": "1.16.0", "transformers": "5.24.0", "torch": "2.15.0"}
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "crates" / "text" / "tests" / "fixtures" / "chat_masks"
TRL_TEMPLATE = Path(trl.__file__).resolve().parent / "chat_templates" / "qwen3_training.jinja"


def tiny_model(vocab_size: int) -> Qwen3ForCausalLM:
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=4,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    return Qwen3ForCausalLM(config)


def make_trainer(record: dict, tokenizer_dir: Path, tmp: str, assistant_only: bool, completion_only: bool):
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model = tiny_model(len(tokenizer))
    args = SFTConfig(
        output_dir=tmp,
        chat_template_path=str(TRL_TEMPLATE),
        assistant_only_loss=assistant_only,
        completion_only_loss=completion_only,
        max_length=None,
        packing=False,
        padding_free=False,
        pad_to_multiple_of=None,
        dataset_num_proc=None,
        shuffle_dataset=False,
        bf16=False,
        use_cpu=True,
        report_to="none",
        seed=0,
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([record]),
        processing_class=tokenizer,
    )


def collate_one(trainer: SFTTrainer) -> tuple[dict, list[int], list[int]]:
    """The prepared row, and the collator's input_ids/labels for a batch of that row alone."""
    assert len(trainer.train_dataset) == 1
    row = trainer.train_dataset[0]
    batch = trainer.data_collator([row])
    input_ids = batch["input_ids"][0].tolist()
    labels = batch["labels"][0].tolist()
    assert input_ids == row["input_ids"], "collator changed input_ids (padding?)"
    assert labels == row["labels"], "collator changed labels"
    return row, input_ids, labels


def rendered_text(trainer: SFTTrainer, row: dict) -> str:
    """The exact string TRL tokenised for this row (apply_chat_template renders, then tokenises)."""
    tok = trainer.processing_class
    tools = row.get("tools")
    if "messages" in row:
        return tok.apply_chat_template(
            row["messages"], tools=tools, tokenize=False, chat_template=trainer.chat_template
        )
    if isinstance(row["prompt"], list):
        return tok.apply_chat_template(
            row["prompt"] + row["completion"], tools=tools, tokenize=False, chat_template=trainer.chat_template
        )
    # Plain text: the prepared row's completion already carries the EOS TRL appended.
    return row["prompt"] + row["completion"]


def spans(labels: list[int]) -> list[tuple[int, int]]:
    out, start = [], None
    for i, lab in enumerate(labels + [-100]):
        if lab != -100 and start is None:
            start = i
        elif lab == -100 and start is not None:
            out.append((start, i))
            start = None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cases", type=Path, default=None, help="default: OUT/cases.jsonl")
    parser.add_argument("--any-version", action="store_true", help="run with unpinned trl/transformers/torch")
    opts = parser.parse_args()

    versions = {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__}
    print("versions:", versions, "datasets:", datasets.__version__, file=sys.stderr)
    mismatched = {k: v for k, v in versions.items() if v.split("+")[0] != PINNED[k]}
    if mismatched and not opts.any_version:
        print(f"error: versions differ from the pins {PINNED}: {mismatched} (use --any-version)", file=sys.stderr)
        return 2

    shared = Path(os.environ.get("MEDTUNE_SHARED", REPO_ROOT.parent / "shared"))
    if not shared.is_absolute():
        shared = (REPO_ROOT / shared).resolve()
    tokenizer_dir = shared / "tokenizers" / "qwen3"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        print(f"error: no Qwen3 tokenizer at {tokenizer_dir} (set MEDTUNE_SHARED)", file=sys.stderr)
        return 2

    out_dir: Path = opts.out
    cases_path = opts.cases or out_dir / "cases.jsonl"
    cases = [json.loads(line) for line in cases_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    names = [c["name"] for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()

    golden = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            name = case["name"]
            record = {k: v for k, v in case.items() if k != "name"}
            is_pc = "prompt" in record and "completion" in record
            assert is_pc or "messages" in record, f"{name}: neither messages nor prompt/completion"

            trainer = make_trainer(record, tokenizer_dir, tmp, assistant_only=not is_pc, completion_only=is_pc)
            assert trainer.processing_class.chat_template == TRL_TEMPLATE.read_text(encoding="utf-8")
            row, input_ids, labels = collate_one(trainer)
            text = rendered_text(trainer, row)
            tok = trainer.processing_class
            retok = tok(text, add_special_tokens=False)["input_ids"]
            assert retok == input_ids, f"{name}: rendered text does not re-tokenise to TRL's input_ids"
            assert any(lab != -100 for lab in labels), f"{name}: nothing supervised"
            assert all(lab in (-100, tid) for lab, tid in zip(labels, input_ids, strict=True))

            if is_pc and isinstance(record["prompt"], list):
                # The prompt must be a token prefix of prompt+completion, else TRL drops its diverging tail.
                prompt_ids = tok.apply_chat_template(
                    row["prompt"], tools=row.get("tools"), tokenize=True, add_generation_prompt=True, return_dict=True
                )["input_ids"]
                assert input_ids[: len(prompt_ids)] == prompt_ids, f"{name}: prompt is not a prefix"
                # Diagnostic only: does assistant_only_loss=True as well change anything?
                both = make_trainer(record, tokenizer_dir, tmp, assistant_only=True, completion_only=True)
                _, ids2, labels2 = collate_one(both)
                same = ids2 == input_ids and labels2 == labels
                print(f"[{name}] with assistant_only_loss=True too: {'same labels' if same else 'DIFFERENT'}")
            elif is_pc:
                prompt_ids = tok(row["prompt"])["input_ids"]
                if input_ids[: len(prompt_ids)] != prompt_ids:
                    print(f"[{name}] note: prompt tokens merge across the prompt/completion boundary")

            golden.append(
                {
                    "name": name,
                    "loss": "completion_only" if is_pc else "assistant_only",
                    "text": text,
                    "input_ids": input_ids,
                    "labels": labels,
                }
            )
            n_sup = sum(lab != -100 for lab in labels)
            print(f"[{name}] {len(input_ids)} tokens, {n_sup} supervised")
            for a, b in spans(labels):
                print(f"    [{a}:{b}] {tok.decode(input_ids[a:b])!r}")

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "trl_golden.jsonl", "w", encoding="utf-8") as f:
        for g in golden:
            f.write(json.dumps(g, ensure_ascii=False, separators=(",", ":")) + "\n")
    shutil.copyfile(TRL_TEMPLATE, out_dir / "qwen3_training.jinja")
    print(f"wrote {len(golden)} cases to {out_dir / 'trl_golden.jsonl'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
