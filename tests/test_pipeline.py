"""`tether run`: ordered stages from one YAML, `{out}` substitution, caching, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tether.errors import ConfigError
from tether.pipeline import run_pipeline


def _pipeline(tmp_path: Path, steps: int = 2) -> Path:
    spec = {
        "out": str(tmp_path / "run"),
        "seed": 3,
        "stages": {
            "world": {"size": "small"},
            "pretrain": {
                "data": {"path": "{out}/world/pretrain.txt", "seq_len": 32, "vocab_size": 300},
                "train": {"max_steps": steps, "batch_size": 4, "progress": False,
                          "tensorboard": False},
            },
        },
        "profiles": {"longer": ["stages.pretrain.train.max_steps=3"]},
    }
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_runs_in_order_then_caches(tmp_path: Path) -> None:
    path = _pipeline(tmp_path)
    lines: list[str] = []
    summaries = run_pipeline(path, log=lines.append)
    assert list(summaries) == ["world", "pretrain"]
    assert [x.split("]")[0] for x in lines if "running" in x] == ["[world", "[pretrain"]
    run = tmp_path / "run"
    assert (run / "pretrain" / "model" / "config.json").is_file()
    saved = yaml.safe_load((run / "pretrain" / "config.yaml").read_text())
    assert saved["run"]["seed"] == 3 and saved["data"]["path"] == f"{run}/world/pretrain.txt"

    lines.clear()
    again = run_pipeline(path, log=lines.append)
    assert all("cached" in x for x in lines) and len(lines) == 2
    assert again["pretrain"] == summaries["pretrain"]

    # A changed stage runs again; the stages before it stay cached.
    lines.clear()
    run_pipeline(path, profile="longer", log=lines.append)
    assert "cached" in lines[0] and "running" in lines[1]
    metrics = (run / "pretrain" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(metrics[-1])["step"] == 3


def test_unknown_kind_and_key_fail_before_running(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"out": str(tmp_path / "r"), "stages": {"x": {}}}))
    with pytest.raises(ConfigError, match="unknown stage kind 'x'"):
        run_pipeline(path, log=lambda _: None)
    path.write_text(yaml.safe_dump({"out": str(tmp_path / "r"), "stages": {}, "oops": 1}))
    with pytest.raises(ConfigError, match="oops: unknown key"):
        run_pipeline(path, log=lambda _: None)
    with pytest.raises(ConfigError, match="profiles.nope: no such profile"):
        run_pipeline(_pipeline(tmp_path), profile="nope", log=lambda _: None)


def test_cli_bad_stage_key_exits_2(tmp_path: Path) -> None:
    path = _pipeline(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "tether.cli", "run", str(path),
                           "stages.pretrain.train.bogus=1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "pipeline stage 'pretrain'" in proc.stderr and "train.bogus: unknown key" in proc.stderr
    assert not (tmp_path / "run").exists()  # checked before the first stage ran


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tether.cli", "demo", "--quick", "--out",
                           str(tmp_path / "demo")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for stage in ("world", "pretrain", "sft", "rm"):
        assert (tmp_path / "demo" / stage / "summary.json").is_file()
