from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tether.config import (
    Config,
    OptimConfig,
    RunConfig,
    apply_overrides,
    exact_div,
    load_config,
    write_config,
)
from tether.errors import ConfigError


class StageConfig(Config):
    run: RunConfig = RunConfig()
    optim: OptimConfig = OptimConfig()
    name: str = "x"


def test_yaml_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 0.001\nname: a\n")
    cfg = load_config(StageConfig, f, ["optim.lr=3e-4", "run.seed=7", "optim.betas=[0.8,0.9]"])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.run.seed == 7
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.name == "a"


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lrr: 0.001\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: optim\.lrr: unknown key"):
        load_config(StageConfig, f)


def test_bad_value_and_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"optim\.lr: .*greater than 0"):
        load_config(StageConfig, None, ["optim.lr=-1"])
    with pytest.raises(ConfigError, match=r"run\.seed"):
        load_config(StageConfig, None, ["run.seed=abc"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(StageConfig, None, ["nonsense"])


def test_missing_and_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(StageConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml:.*not valid YAML"):
        load_config(StageConfig, bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(StageConfig, lst)


def test_overrides_do_not_change_input() -> None:
    data = {"optim": {"lr": 1.0}}
    out = apply_overrides(data, ["optim.lr=2"])
    assert data["optim"]["lr"] == 1.0 and out["optim"]["lr"] == 2


def test_write_config_round_trip(tmp_path: Path) -> None:
    cfg = load_config(StageConfig, None, ["run.out=/tmp/x"])
    write_config(cfg, tmp_path / "config.yaml")
    again = StageConfig.model_validate(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert again == cfg


def test_exact_div() -> None:
    assert exact_div(8, 2, "batch") == 4
    with pytest.raises(ConfigError, match="batch: 7 is not divisible by 2"):
        exact_div(7, 2, "batch")


def test_cli_help_lists_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "tether.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "Commands" in out and "version" in out


def test_overrides_keep_key_order() -> None:
    out = apply_overrides({"b": {"y": 1, "x": 2}, "a": 1}, ["b.x=3"])
    assert list(out) == ["b", "a"] and list(out["b"]) == ["y", "x"]
