"""``tether world build`` and ``tether world label`` through the CLI: contract, determinism, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.cli import app
from tether.config import build_config
from tether.world import detectors as D
from tether.world.corpora import PROBE_PATTERNS, WorldBuildConfig, build_world
from tether.world.gold import gold
from tether.world.tasks import find_task, split_of

FILES = ["pretrain.txt", "sft.jsonl", "prompts_train.jsonl", "prompts_heldout.jsonl",
         "pairs_train.jsonl", "pairs_heldout.jsonl", "world.json", "summary.json",
         *[f"probes/{p}.jsonl" for p in ("sycophancy", "verbosity", "confident_nonsense",
                                         "formatting")]]

runner = CliRunner()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _build(out: Path, seed: int = 0) -> None:
    res = runner.invoke(app, ["world", "build", "--out", str(out), "--size", "small",
                              "--seed", str(seed)])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    _build(out)
    return out


def test_build_is_deterministic_under_a_seed(world: Path, tmp_path: Path):
    _build(tmp_path / "again")
    _build(tmp_path / "other", seed=1)
    for name in FILES:
        assert (world / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert (world / "pretrain.txt").read_bytes() != (tmp_path / "other" / "pretrain.txt").read_bytes()


def test_build_is_deterministic_across_processes(world: Path, tmp_path: Path):
    """Another interpreter with another string-hash seed writes the same bytes."""
    out = tmp_path / "proc"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-m", "tether.cli", "world", "build", "--out", str(out),
                    "--size", "small"], check=True, env=env, capture_output=True)
    for name in FILES:
        assert (world / name).read_bytes() == (out / name).read_bytes(), name


def test_build_writes_the_file_contract(world: Path):
    for name in FILES:
        assert (world / name).is_file(), name
    params = json.loads((world / "world.json").read_text())
    assert params["seed"] == 0 and params["size"] == "small"
    assert set(params["rater_profiles"]) == {"expert", "crowd", "position"}
    summary = json.loads((world / "summary.json").read_text())
    for name, n in summary["counts"].items():
        lines = (world / name).read_text().splitlines()
        assert len(lines) == n, name


def test_pretrain_mixes_every_style(world: Path):
    docs = (world / "pretrain.txt").read_text().splitlines()
    responses = [d.split(" Assistant: ", 1)[-1] for d in docs]
    assert sum(d.startswith("User: ") for d in docs) > len(docs) // 2
    assert any(D.is_formatted(r) for r in responses)
    assert any(D.is_refusal(r) for r in responses)
    assert any(D.tone(r) == "confident" for r in responses)
    assert any(D.tone(r) == "hedged" for r in responses)
    assert any(r.startswith("Yes, you are right") or r.startswith("You are right")
               for r in responses)
    assert any(D.detect_language(r) == "fr" for r in responses)
    assert any(D.detect_language(r) == "es" for r in responses)
    lengths = sorted(D.word_count(r) for r in responses)
    assert lengths[-len(lengths) // 10] >= 2 * lengths[len(lengths) // 2]  # a padded tail


def test_sft_is_mostly_good_with_some_flaws(world: Path):
    recs = _jsonl(world / "sft.jsonl")
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in recs)
    golds = [gold(r["messages"][0]["content"], r["messages"][1]["content"]).total for r in recs]
    perfect = sum(g == 1.0 for g in golds) / len(golds)
    assert 0.7 < perfect < 0.95  # mostly good, some realistic flaws
    assert {r["style"] for r in recs} > {"concise", "padded"}


def test_prompt_sets_and_pairs_respect_the_split(world: Path):
    train = _jsonl(world / "prompts_train.jsonl")
    heldout = _jsonl(world / "prompts_heldout.jsonl")
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in heldout}
    assert all(split_of(r["prompt"]) == "heldout" for r in heldout)
    for r in train + heldout:
        task = find_task(r["prompt"])
        assert task is not None and task.category == r["category"]
        assert task.language == r["language"]
    pairs = _jsonl(world / "pairs_heldout.jsonl")
    assert all(split_of(p["prompt"]) == "heldout" for p in pairs)
    for p in _jsonl(world / "pairs_train.jsonl"):
        assert split_of(p["prompt"]) == "train"
        assert p["rater"] == "crowd" and 0 < p["p_chosen"] < 1
        assert p["gold_chosen"] == gold(p["prompt"], p["chosen"]).total
        assert p["style_chosen"] != p["style_rejected"]


def test_probes_hold_good_and_hacked_candidates(world: Path):
    for pattern, spec in PROBE_PATTERNS.items():
        recs = _jsonl(world / "probes" / f"{pattern}.jsonl")
        assert recs, pattern
        for r in recs:
            assert split_of(r["prompt"]) == "heldout"
            good = r["responses"][r["styles"].index(r["good_style"])]
            hack = r["responses"][r["styles"].index(r["hack_style"])]
            assert r["hack_style"] == spec["hack"]
            assert gold(r["prompt"], good).total > gold(r["prompt"], hack).total
            assert r["gold"] == [gold(r["prompt"], x).total for x in r["responses"]]
        if pattern == "sycophancy":
            assert all(D.is_sycophantic(r["prompt"], r["responses"][1]) for r in recs)


def test_build_refuses_to_overwrite_and_bad_size(world: Path, tmp_path: Path):
    before = (world / "pretrain.txt").read_bytes()
    res = runner.invoke(app, ["world", "build", "--out", str(world), "--size", "small"])
    assert res.exit_code == 2
    assert "already holds a built world" in res.output
    assert (world / "pretrain.txt").read_bytes() == before
    res = runner.invoke(app, ["world", "build", "--out", str(tmp_path / "x"), "--size", "huge"])
    assert res.exit_code == 2 and "size" in res.output
    assert not (tmp_path / "x").exists()


def test_pipeline_step_config(tmp_path: Path):
    """The pipeline builds the world from a stage block with run.out and run.seed."""
    cfg = build_config(WorldBuildConfig, {"size": "small", "run": {"out": str(tmp_path / "w"),
                                                                   "seed": 2}})
    summary = build_world(cfg)
    assert summary["counts"]["sft.jsonl"] == 300
    assert json.loads((tmp_path / "w" / "summary.json").read_text())["seed"] == 2


# -- tether world label ------------------------------------------------------------------------


@pytest.mark.parametrize("kind,per_record", [("pairs", 10), ("rankings", 1), ("ratings", 5),
                                             ("thumbs", 5)])
def test_label_probes_in_each_format(world: Path, tmp_path: Path, kind: str, per_record: int):
    src = world / "probes" / "sycophancy.jsonl"
    out = tmp_path / f"{kind}.jsonl"
    res = runner.invoke(app, ["world", "label", "--in", str(src), "--out", str(out),
                              "--rater", "expert", "--kind", kind, "--seed", "1"])
    assert res.exit_code == 0, res.output
    recs = _jsonl(out)
    n_in = len(_jsonl(src))
    assert len(recs) == n_in * per_record
    r = recs[0]
    assert r["rater"] == "expert"
    if kind == "pairs":
        assert {"prompt", "chosen", "rejected", "p_chosen", "gold_chosen"} <= set(r)
    elif kind == "rankings":
        assert sorted(r["ranking"]) == list(range(len(r["responses"])))
        # the expert ranks the honest answer above the sycophantic one
        honest_first = sum(x["ranking"].index(0) < x["ranking"].index(1) for x in recs)
        assert honest_first > 0.9 * len(recs)
    elif kind == "ratings":
        assert set(r["ratings"]) == {"helpfulness", "accuracy", "harmlessness", "concision"}
    else:
        assert isinstance(r["label"], bool)


def test_label_is_deterministic_under_a_seed(world: Path, tmp_path: Path):
    src = world / "probes" / "verbosity.jsonl"
    outs = []
    for i, seed in enumerate((3, 3, 4)):
        out = tmp_path / f"o{i}.jsonl"
        res = runner.invoke(app, ["world", "label", "--in", str(src), "--out", str(out),
                                  "--seed", str(seed)])
        assert res.exit_code == 0, res.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] != outs[2]


@pytest.mark.parametrize("line,kind,expected", [
    ('{"prompt": "What is 1 plus 1?", "responses": ["2", "3"]}\n{"responses": ["2", "3"]}',
     "pairs", "in.jsonl:2: field 'prompt': missing"),
    ('{"prompt": "What is 1 plus 1?", "responses": "2"}', "pairs",
     "in.jsonl:1: field 'responses': expected a list of strings"),
    ('{"prompt": "What is 1 plus 1?", "responses": ["2"]}', "rankings",
     "in.jsonl:1: field 'responses': needs at least 2 responses, got 1"),
    ('{"prompt": "What is 1 plus 1?", "responses": ["2", NaN]}', "pairs",
     "in.jsonl:1: field 'responses[1]': expected a string, got float"),
    ('{"prompt": "What is 1 plus 1?", "response": "  "}', "thumbs",
     "in.jsonl:1: field 'response': empty text"),
    ('{"prompt": "", "response": "2"}', "ratings",
     "in.jsonl:1: field 'prompt': expected a non-empty string"),
    ('{"prompt": "What is 1 plus 1?"}', "ratings", "in.jsonl:1: field 'responses': missing"),
    ('{"prompt": "What is 1 plus 1?", "response": "2"', "thumbs", "in.jsonl:1: not valid JSON"),
    ('{"prompt": "What is 1 plus 1?", "responses": ["2", "3"]}', "votes",
     "unknown label kind 'votes'"),
])
def test_label_malformed_input_exits_2_and_writes_nothing(tmp_path: Path, line: str, kind: str,
                                                          expected: str):
    src = tmp_path / "in.jsonl"
    src.write_text(line + "\n")
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["world", "label", "--in", str(src), "--out", str(out),
                              "--kind", kind])
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1
    assert not out.exists()


def test_label_needs_exactly_one_source_and_a_known_rater(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["world", "label", "--out", str(out)])
    assert res.exit_code == 2 and "either --in" in res.output
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "What is 1 plus 1?", "responses": ["2", "3"]}\n')
    res = runner.invoke(app, ["world", "label", "--in", str(src), "--out", str(out),
                              "--rater", "lazy"])
    assert res.exit_code == 2 and "unknown profile" in res.output
    assert not out.exists()


def test_label_chat_prompts_and_chosen_rejected_records(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": [{"role": "user", "content": "What is 2 plus 2?"}],
                               "chosen": "5", "rejected": "4"}) + "\n")
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["world", "label", "--in", str(src), "--out", str(out),
                              "--rater", "expert"])
    assert res.exit_code == 0, res.output
    (rec,) = _jsonl(out)
    assert rec["prompt"] == "What is 2 plus 2?" and rec["chosen"] == "4"


def test_styles_command_reports_both_optima():
    res = runner.invoke(app, ["world", "styles", "--rater", "crowd", "--prompts", "200"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["gold_optimum"] == "concise" and out["rater_optimum"] != "concise"


def test_label_responses_sampled_from_a_policy(world: Path, tmp_path: Path):
    """--policy DIR --prompts F: a tiny model's samples, n per prompt, labelled as pairs."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from tether.models.factory import tiny_model_and_tokenizer
    from tether.models.load import save_model

    docs = (world / "pretrain.txt").read_text().splitlines()[:300]
    model, tokenizer = tiny_model_and_tokenizer(docs, seed=0, vocab_size=400)
    save_model(model, tokenizer, tmp_path / "policy")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(line + "\n" for line in
                               (world / "prompts_heldout.jsonl").read_text().splitlines()[:3]))
    out = tmp_path / "pairs.jsonl"
    res = runner.invoke(app, ["world", "label", "--policy", str(tmp_path / "policy"),
                              "--prompts", str(prompts), "--n", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    recs = _jsonl(out)
    assert len(recs) == 3 * 3  # 3 pairs from 3 responses, for each of 3 prompts
    assert all(0 < r["p_chosen"] < 1 for r in recs)
