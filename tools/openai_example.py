#!/usr/bin/env python3
"""The README's OpenAI-client example, run for real against `medtune serve` (a tiny model unless
--model is given). Checks what the client sees: the model list, a whole completion, a streamed one,
and the client's own exceptions for a wrong key and a too-large max_tokens.

    cargo build --release
    .venv/bin/python tools/openai_example.py
"""

import argparse
import sys
from pathlib import Path

import openai
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_util import ROOT, Server, tiny_model  # noqa: E402


def example(base_url: str, api_key: str, model: str):
    # --- the README example -------------------------------------------------------------------
    client = OpenAI(base_url=base_url, api_key=api_key)
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You are a careful medical expert."},
            {"role": "user", "content": "Which vitamin deficiency causes scurvy? A. Vitamin C  B. Vitamin D"},
        ],
        max_tokens=32,
        temperature=0.2,
        seed=7,
    )
    print(reply.choices[0].message.content)
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Name one cause of microcytic anaemia."}],
        max_tokens=32,
        stream=True,
    ):
        if chunk.choices:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
    print()
    # ------------------------------------------------------------------------------------------
    return client, reply


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--medtune", type=Path, default=ROOT / "target/release/medtune")
    ap.add_argument("--model", type=Path, help="default: a tiny model in target/loadtest")
    args = ap.parse_args()
    model_dir = args.model or tiny_model(ROOT / "target/loadtest", args.medtune)
    key = "example-key"
    server = Server(args.medtune, model_dir, "--served-model-name", "medtune-demo",
                    "--max-tokens-cap", "64", env={"MEDTUNE_API_KEY": key})
    try:
        client, reply = example(server.base + "/v1", key, "medtune-demo")
        assert [m.id for m in client.models.list().data] == ["medtune-demo"]
        assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
        assert reply.usage.completion_tokens <= 32 and reply.usage.prompt_tokens > 0
        # The same seed gives the same text.
        again = client.chat.completions.create(
            model="medtune-demo", messages=[{"role": "user", "content": "hi"}], max_tokens=8, seed=3)
        twice = client.chat.completions.create(
            model="medtune-demo", messages=[{"role": "user", "content": "hi"}], max_tokens=8, seed=3)
        assert again.choices[0].message.content == twice.choices[0].message.content
        chunks = list(client.chat.completions.create(
            model="medtune-demo", messages=[{"role": "user", "content": "hi"}], max_tokens=8,
            stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
        assert chunks[-1].usage.completion_tokens == 8
        assert chunks[-2].choices[0].finish_reason == "length"
        try:
            OpenAI(base_url=server.base + "/v1", api_key="wrong").models.list()
            raise AssertionError("a wrong key was accepted")
        except openai.AuthenticationError as e:
            assert e.status_code == 401
        try:
            client.chat.completions.create(
                model="medtune-demo", messages=[{"role": "user", "content": "hi"}], max_tokens=65)
            raise AssertionError("max_tokens over the cap was accepted")
        except openai.BadRequestError as e:
            assert e.body["param"] == "max_tokens", e.body
        try:
            client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
            raise AssertionError("an unknown model was accepted")
        except openai.NotFoundError:
            pass
    finally:
        code = server.stop()
    assert code == 0, f"medtune serve exited with {code}"
    print("openai example: ok")


if __name__ == "__main__":
    main()
