"""Pretraining: corpora and packing, `tether pretrain` through the CLI, and a run
killed with SIGKILL between checkpoints that resumes to the uninterrupted weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from tether.cli import app
from tether.data.text import pack_documents, read_documents
from tether.engine import latest_checkpoint, list_checkpoints
from tether.errors import DataError

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def _corpus(path: Path, n: int = 300) -> Path:
    lines = [f"Line {i}: {i % 13} plus {i % 7} is {i % 13 + i % 7}. The sea is calm."
             for i in range(n)]
    path.write_text("\n".join(lines) + "\n\n")
    return path


# -- corpora ---------------------------------------------------------------------

def test_documents_from_text_glob_jsonl_and_datasets_dir(tmp_path: Path) -> None:
    from datasets import Dataset

    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    (tmp_path / "b.txt").write_text("three\n")
    assert read_documents(str(tmp_path / "*.txt")) == ["one", "two", "three"]
    assert read_documents(str(tmp_path / "*.txt"), document="file") == ["one\n\ntwo\n",
                                                                         "three\n"]
    (tmp_path / "c.jsonl").write_text('{"text": "four"}\n{"text": "five"}\n')
    assert read_documents(tmp_path / "c.jsonl") == ["four", "five"]
    Dataset.from_dict({"text": ["six", "seven"]}).save_to_disk(str(tmp_path / "ds"))
    assert read_documents([str(tmp_path / "ds"), str(tmp_path / "b.txt")]) == [
        "six", "seven", "three"]


def test_corpus_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'text': missing"):
        read_documents(tmp_path / "d.jsonl")
    (tmp_path / "bin.txt").write_bytes(b"fine\n\xff\xfe bad\n")
    with pytest.raises(DataError, match=r"bin.txt:2: not UTF-8 text"):
        read_documents(tmp_path / "bin.txt")
    with pytest.raises(DataError, match="no file matches"):
        read_documents(str(tmp_path / "*.md"))
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(DataError, match="no non-empty document"):
        read_documents(tmp_path / "empty.txt")


def test_packing_joins_documents_with_eos_and_drops_the_tail() -> None:
    packed = pack_documents([[1, 5, 6], [1, 7], [1, 8, 9, 10]], seq_len=4, eos_id=2)
    # stream: 1 5 6 2 | 1 7 2 1 | 8 9 10 2 -> 12 tokens, 3 blocks, nothing dropped
    assert packed.blocks.tolist() == [[1, 5, 6, 2], [1, 7, 2, 1], [8, 9, 10, 2]]
    assert (packed.tokens, packed.dropped_tokens) == (12, 0)
    assert pack_documents([[1, 5, 6], [1, 7]], 4, 2).dropped_tokens == 3
    with pytest.raises(DataError, match="fewer than one block"):
        pack_documents([[1, 2]], seq_len=16, eos_id=2)


# -- through the CLI ---------------------------------------------------------------

def _args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(REPO / "configs/pretrain.yaml"), f"run.out={out}",
            f"data.path={corpus}", "data.seq_len=32", "data.vocab_size=300",
            "train.batch_size=4", "train.log_every=1", "train.progress=false",
            "optim.warmup_steps=2", *extra]


def test_pretrain_cli_smoke_then_sft_from_its_model(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "pretrain.txt")
    out = tmp_path / "run" / "pretrain"
    res = CliRunner().invoke(app, ["pretrain", *_args(corpus, out, "train.max_steps=4",
                                                      "train.save_every=2")])
    assert res.exit_code == 0, res.output
    assert {"config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "model",
            "tb"} <= {p.name for p in out.iterdir()}
    assert [s for s, _ in list_checkpoints(out)] == [2, 4]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["loss/total"] < rows[0]["loss/total"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data/documents"] == 300 and summary["model/vocab_size"] <= 300
    assert (out / "model" / "tokenizer.json").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["seq_len"] == 32

    # Continued pretraining from the Hugging Face directory it wrote.
    more = tmp_path / "run" / "pretrain2"
    res = CliRunner().invoke(app, ["pretrain", *_args(corpus, more, "train.max_steps=2",
                                                      f"model.path={out / 'model'}")])
    assert res.exit_code == 0, res.output
    first = json.loads((more / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss/total"] < rows[0]["loss/total"]  # starts from the trained weights
    assert json.loads((more / "summary.json").read_text())["model/vocab_size"] == \
        summary["model/vocab_size"]

    # The demo pipeline's next step: SFT starting from this model directory.
    sft = tmp_path / "sft.jsonl"
    sft.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is {i} plus 1?"},
        {"role": "assistant", "content": f"{i} plus 1 is {i + 1}."}]}) + "\n" for i in range(8)))
    res = CliRunner().invoke(app, [
        "sft", "--config", str(REPO / "configs/sft.yaml"), f"run.out={tmp_path / 'run/sft'}",
        f"data.path={sft}", f"model.path={out / 'model'}", "train.max_steps=2",
        "train.batch_size=4", "train.progress=false"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "sft" / "model" / "model.safetensors").exists()


def _pretrain_cmd(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tether.cli", "pretrain",
            *_args(corpus, out, "train.max_steps=12", "train.save_every=4",
                   "data.seq_len=64", "train.batch_size=8", *extra)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


def test_sigkill_between_checkpoints_then_resume_gives_the_same_weights(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "pretrain.txt", n=600)
    full = tmp_path / "full"
    subprocess.run(_pretrain_cmd(corpus, full), check=True, env=_env(),
                   capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_pretrain_cmd(corpus, killed), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while latest_checkpoint(killed) is None:  # the first checkpoint (step 4) is whole
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "summary.json").exists()  # killed before the end
    steps = [s for s, _ in list_checkpoints(killed)]
    assert steps and steps[-1] < 12

    subprocess.run([*_pretrain_cmd(corpus, killed), "--resume"], check=True, env=_env(),
                   capture_output=True, timeout=300)
    a = load_file(full / "model" / "model.safetensors")
    b = load_file(killed / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))  # no step logged twice
    done = json.loads((killed / "summary.json").read_text())
    assert done["steps"] == 12 and done["steps_this_run"] == 12 - steps[-1]
