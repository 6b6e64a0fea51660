"""Start `medtune serve` on a free loopback port for a script, and stop it with SIGTERM."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tiny_model(out: Path, medtune: Path) -> Path:
    """A tiny random Qwen3 with medtune's own tokenizer (the quickstart's model folder)."""
    model = out / "model"
    if not (model / "model.safetensors").exists():
        subprocess.run(
            [str(medtune), "quickstart", "--out", str(out), "--epochs", "1"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return model


class Server:
    """`medtune serve ... --bind 127.0.0.1:0`; the port is read from its first line."""

    def __init__(self, medtune: Path, model: Path, *flags: str, env=None):
        cmd = [str(medtune), "serve", "--model", str(model), "--bind", "127.0.0.1:0", *flags]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
        )
        line = self.proc.stdout.readline()
        m = re.search(r"http://(127\.0\.0\.1:\d+)", line)
        if not m:
            self.proc.kill()
            sys.exit(f"medtune serve did not start: {line!r}")
        self.base = f"http://{m.group(1)}"
        self.pid = self.proc.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)
