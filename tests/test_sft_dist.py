"""`tether sft` under `torchrun --nproc-per-node 2` (CPU, gloo) matches one process
with the same global batch, step by step, and only rank 0 writes files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Installed in every process through sitecustomize: logs each file-system write
# (open for writing, mkdir, rename, remove, temp files) under WATCH to LOG.<rank>.
AUDIT = '''
import os, sys
_watch = os.environ["TETHER_AUDIT_WATCH"]
_log = os.environ["TETHER_AUDIT_LOG"] + "." + os.environ.get("RANK", "single")
_events = {"open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree",
           "tempfile.mkstemp", "tempfile.mkdtemp", "os.symlink", "os.truncate"}
_busy = [False]

def _hook(event, args):
    if event not in _events or _busy[0] or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    if not isinstance(path, (str, os.PathLike)):
        return
    path = os.path.abspath(os.fspath(path))
    if not path.startswith(_watch):
        return
    if event == "open":
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writes = (mode is not None and any(c in str(mode) for c in "wax+")) or \\
            (mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if not writes:
            return
    _busy[0] = True
    try:
        with open(_log, "a") as f:
            f.write(event + " " + path + "\\n")
    finally:
        _busy[0] = False

sys.addaudithook(_hook)
'''


def _data(path: Path) -> Path:
    # Uneven lengths, so that per-rank padding and token counts differ.
    with path.open("w") as f:
        for i in range(32):
            words = " ".join(["very"] * (i % 5))
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"Is {i} a {words} big number?"},
                {"role": "assistant", "content": f"{i} is {'big' if i > 15 else 'small'}."
                                                 + " Yes." * (i % 3)}]}) + "\n")
    return path


def _args(data: Path, out: Path) -> list[str]:
    return ["sft", "--config", str(REPO / "configs/sft.yaml"), f"run.out={out}",
            f"data.path={data}", "train.max_steps=5", "train.batch_size=8",
            "train.log_every=1", "train.save_every=2", "train.progress=false",
            "data.max_len=64", "optim.lr=3e-3", "optim.warmup_steps=0"]


def _losses(out: Path) -> list[float]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    return [r["loss/total"] for r in rows]


def test_sft_torchrun_two_processes_matches_one(tmp_path: Path) -> None:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT)
    data = _data(tmp_path / "sft.jsonl")
    one, two = tmp_path / "one" / "sft", tmp_path / "two" / "sft"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(hook_dir), str(REPO / "src")]),
           "TETHER_AUDIT_WATCH": str(tmp_path / "two"),
           "TETHER_AUDIT_LOG": str(tmp_path / "audit")}

    subprocess.run([sys.executable, "-m", "tether.cli", *_args(data, one)], env=env,
                   check=True, capture_output=True, timeout=300)
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "tether.cli", *_args(data, two)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]

    a, b = _losses(one), _losses(two)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-4, (a, b)
    assert a[-1] < a[0]  # it learned something

    writes0 = (tmp_path / "audit.0").read_text().splitlines()
    assert any("metrics.jsonl" in w for w in writes0)
    assert any("checkpoints" in w for w in writes0)
    assert not (tmp_path / "audit.1").exists(), (tmp_path / "audit.1").read_text()
    summary = json.loads((two / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["train/skipped_steps"] == 0
    assert (two / "model" / "model.safetensors").exists()


@pytest.mark.slow  # three torchrun/CLI runs: about a minute, more on a busy machine
def test_pretrain_fsdp_two_processes_matches_one_and_resumes(tmp_path: Path) -> None:
    # FSDP2 (fully_shard) also runs on CPU with gloo, so it is tested here too: 4
    # steps sharded, then --resume to 6, against 6 steps in one process.
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"Doc {i}: {i % 9} and {i % 4} make {i % 9 + i % 4}."
                                for i in range(200)))
    args = ["pretrain", "--config", str(REPO / "configs/pretrain.yaml"),
            f"data.path={corpus}", "data.seq_len=32", "data.vocab_size=300",
            "train.batch_size=8", "train.log_every=1", "train.save_every=2",
            "train.progress=false", "optim.warmup_steps=0", "optim.schedule=constant"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "tether.cli", *args, f"run.out={one}",
                    "train.max_steps=6"], env=env, check=True, capture_output=True, timeout=300)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "tether.cli", *args, f"run.out={two}",
                "train.fsdp=true"]
    for extra in (["train.max_steps=4"], ["train.max_steps=6", "--resume"]):
        res = subprocess.run([*torchrun, *extra], env=env, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
    rows = [[json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (one, two)]
    assert [r["step"] for r in rows[1]] == [1, 2, 3, 4, 5, 6]
    diffs = [abs(x["loss/total"] - y["loss/total"]) for x, y in zip(*rows, strict=True)]
    assert max(diffs) <= 1e-4, rows

    from safetensors.torch import load_file

    w1, w2 = load_file(one / "model" / "model.safetensors"), load_file(
        two / "model" / "model.safetensors")
    assert w1.keys() == w2.keys()
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) <= 1e-4
