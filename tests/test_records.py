"""Preference records: validation with file:line:field, chat handling, conversion to pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tether.data.records import (
    PreferencePair,
    load_pairs,
    rankings_to_pairs,
    ratings_to_pairs,
    read_pairs,
    read_rankings,
    read_ratings,
    thumbs_to_pairs,
)
from tether.errors import DataError


def write(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


GOOD = {"prompt": "What is 2 plus 2?", "chosen": "4.", "rejected": "5.", "category": "arith"}


def test_read_pairs_keeps_fields_and_metadata(tmp_path: Path) -> None:
    recs = [GOOD, {**GOOD, "margin": 1.5, "weight": 2}]
    pairs = read_pairs(write(tmp_path / "p.jsonl", recs))
    assert pairs[0] == PreferencePair("What is 2 plus 2?", "4.", "5.", metadata={"category": "arith"})
    assert pairs[1].margin == 1.5 and pairs[1].weight == 2.0
    assert pairs[0].to_record() == GOOD


@pytest.mark.parametrize("bad, field, msg", [
    ({"prompt": "p", "rejected": "r"}, "chosen", "missing"),
    ({"prompt": "p", "chosen": "c"}, "rejected", "missing"),
    ({"chosen": "c", "rejected": "r"}, "prompt", "missing"),
    ({"prompt": "p", "chosen": "  ", "rejected": "r"}, "chosen", "empty text"),
    ({"prompt": "", "chosen": "c", "rejected": "r"}, "prompt", "empty text"),
    ({"prompt": "p", "chosen": 3, "rejected": "r"}, "chosen", "expected a string, got int"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "margin": "big"}, "margin",
     "expected a number"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "margin": float("nan")}, "margin",
     "not a finite number"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "weight": 0}, "weight", "must be > 0"),
    ({"prompt": "p", "chosen": "c", "rejected": "c"}, "rejected", "identical"),
    ({"prompt": "p", "chosen": [{"role": "user", "content": "x"}], "rejected": "r"}, "chosen",
     "only assistant"),
    ({"prompt": "p", "chosen": [{"content": "x"}], "rejected": "r"}, "chosen[0].role",
     "missing"),
])
def test_malformed_pair_names_file_line_field(tmp_path: Path, bad: dict, field: str,
                                              msg: str) -> None:
    path = write(tmp_path / "p.jsonl", [GOOD, GOOD, bad])
    with pytest.raises(DataError) as e:
        read_pairs(path)
    text = str(e.value)
    assert text.startswith(f"{path}:3: field '{field}': "), text
    assert msg in text
    assert e.value.line == 3 and e.value.field == field


def test_bad_json_and_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(DataError, match=r"p.jsonl:2: not valid JSON"):
        read_pairs(p)
    p.write_text("\n")
    with pytest.raises(DataError, match="no records"):
        read_pairs(p)


def test_chat_pairs_explicit_and_implicit_prompt(tmp_path: Path) -> None:
    user = {"role": "user", "content": "Hi, what is 3 times 3?"}
    system = {"role": "system", "content": "Be brief."}
    explicit = {"prompt": [system, user],
                "chosen": [{"role": "assistant", "content": "9."}],
                "rejected": [{"role": "assistant", "content": "6."}]}
    implicit = {"chosen": [system, user, {"role": "assistant", "content": "9."}],
                "rejected": [system, user, {"role": "assistant", "content": "6."}]}
    a, b = read_pairs(write(tmp_path / "c.jsonl", [explicit, implicit]))
    for pair in (a, b):
        assert pair.prompt == [system, user]
        assert (pair.chosen, pair.rejected) == ("9.", "6.")


def test_implicit_prompt_with_no_common_prefix_fails(tmp_path: Path) -> None:
    rec = {"chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}]}
    with pytest.raises(DataError, match=r":1: field 'prompt': missing"):
        read_pairs(write(tmp_path / "c.jsonl", [rec]))


def test_pairs_from_parquet_name_row_line(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD, {**GOOD, "chosen": ""}]), path)
    with pytest.raises(DataError, match=r"p.parquet:3: field 'chosen': empty text"):
        read_pairs(path)


def test_rankings_all_pairs_weighted_per_prompt(tmp_path: Path) -> None:
    recs = [{"prompt": "q1", "responses": ["a", "b", "c", "d"], "ranking": [2, 0, 3, 1]},
            {"prompt": "q2", "responses": ["x", "y"], "ranking": ["y", "x"]}]
    rankings = read_rankings(write(tmp_path / "r.jsonl", recs))
    assert rankings[0].responses == ["c", "a", "d", "b"]
    pairs = rankings_to_pairs(rankings)
    # K=4 -> 4*3/2 = 6 pairs of weight 1/6; K=2 -> 1 pair of weight 1
    assert len(pairs) == 7
    q1 = [p for p in pairs if p.prompt == "q1"]
    assert {(p.chosen, p.rejected) for p in q1} == {
        ("c", "a"), ("c", "d"), ("c", "b"), ("a", "d"), ("a", "b"), ("d", "b")}
    assert all(p.weight == pytest.approx(1 / 6) for p in q1)
    assert len({p.group for p in q1}) == 1
    q2 = [p for p in pairs if p.prompt == "q2"]
    assert (q2[0].chosen, q2[0].rejected, q2[0].weight) == ("y", "x", 1.0)
    assert q1[0].group != q2[0].group


@pytest.mark.parametrize("bad, field, msg", [
    ({"prompt": "q", "responses": ["a", "b"], "ranking": [0, 0]}, "ranking", "permutation"),
    ({"prompt": "q", "responses": ["a", "b"], "ranking": ["a", "z"]}, "ranking", "exactly once"),
    ({"prompt": "q", "responses": ["a"], "ranking": [0]}, "responses", "at least 2"),
    ({"prompt": "q", "responses": "ab", "ranking": [0, 1]}, "responses", "expected a list"),
    ({"prompt": "q", "responses": ["a", ""], "ranking": [0, 1]}, "responses[1]", "empty text"),
    ({"prompt": "q", "responses": ["a", "b"]}, "ranking", "missing"),
])
def test_malformed_ranking(tmp_path: Path, bad: dict, field: str, msg: str) -> None:
    with pytest.raises(DataError) as e:
        read_rankings(write(tmp_path / "r.jsonl", [bad]))
    assert f":1: field '{field}': " in str(e.value) and msg in str(e.value)


def test_ratings_to_pairs_rule(tmp_path: Path) -> None:
    recs = [
        {"prompt": "q", "response": "a", "ratings": {"helpful": 5, "accurate": 5}},  # mean 5
        {"prompt": "q", "response": "b", "ratings": {"helpful": 4, "accurate": 3}},  # mean 3.5
        {"prompt": "q", "response": "c", "ratings": {"helpful": 4, "accurate": 4}},  # mean 4
        {"prompt": "q2", "response": "z", "ratings": {"helpful": 2, "accurate": 2}},  # alone
    ]
    pairs = ratings_to_pairs(read_ratings(write(tmp_path / "r.jsonl", recs)), threshold=1.0)
    # a-b differ by 1.5, a-c by 1.0 (kept: >= threshold), c-b by 0.5 (dropped)
    assert [(p.chosen, p.rejected, p.margin) for p in pairs] == [("a", "c", 1.0),
                                                                 ("a", "b", 1.5)]
    assert all(p.weight == 0.5 for p in pairs)
    only_helpful = ratings_to_pairs(read_ratings(tmp_path / "r.jsonl"), threshold=1.0,
                                    dimensions=["helpful"])
    assert [(p.chosen, p.rejected) for p in only_helpful] == [("a", "b"), ("a", "c")]


def test_ratings_missing_dimension_names_source(tmp_path: Path) -> None:
    recs = [{"prompt": "q", "response": "a", "ratings": {"helpful": 5}},
            {"prompt": "q", "response": "b", "ratings": {"accurate": 1}}]
    path = write(tmp_path / "r.jsonl", recs)
    with pytest.raises(DataError, match=r"r.jsonl:2: field 'ratings': lacks dimension"):
        ratings_to_pairs(read_ratings(path), dimensions=["helpful"])


def test_thumbs_to_pairs(tmp_path: Path) -> None:
    recs = [{"prompt": "q", "response": "good", "label": True},
            {"prompt": "q", "response": "bad", "label": False},
            {"prompt": "q", "response": "worse", "label": False},
            {"prompt": "q2", "response": "only up", "label": True}]
    pairs = thumbs_to_pairs(read_ratings(write(tmp_path / "t.jsonl", recs)))
    assert [(p.chosen, p.rejected, p.weight) for p in pairs] == [("good", "bad", 0.5),
                                                                 ("good", "worse", 0.5)]


@pytest.mark.parametrize("bad, field", [
    ({"prompt": "q", "response": "a"}, "ratings"),
    ({"prompt": "q", "response": "a", "label": "yes"}, "label"),
    ({"prompt": "q", "response": "a", "ratings": {"h": True}}, "ratings.h"),
    ({"prompt": "q", "response": "a", "ratings": [5]}, "ratings"),
    ({"prompt": "q", "response": "a", "ratings": {"h": math.inf}}, "ratings.h"),
])
def test_malformed_rating(tmp_path: Path, bad: dict, field: str) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps(bad).replace("Infinity", "1e999") + "\n")
    with pytest.raises(DataError, match=rf":1: field '{field}': "):
        read_ratings(p)


def test_load_pairs_detects_format(tmp_path: Path) -> None:
    write(tmp_path / "p.jsonl", [GOOD])
    write(tmp_path / "r.jsonl", [{"prompt": "q", "responses": ["a", "b"], "ranking": [1, 0]}])
    write(tmp_path / "t.jsonl", [{"prompt": "q", "response": "a", "label": True},
                                 {"prompt": "q", "response": "b", "label": False}])
    write(tmp_path / "x.jsonl", [{"text": "hello"}])
    assert load_pairs(tmp_path / "p.jsonl")[0].chosen == "4."
    assert load_pairs(tmp_path / "r.jsonl")[0].chosen == "b"
    assert load_pairs(tmp_path / "t.jsonl")[0].rejected == "b"
    with pytest.raises(DataError, match="x.jsonl:1: cannot tell the format"):
        load_pairs(tmp_path / "x.jsonl")
    write(tmp_path / "t1.jsonl", [{"prompt": "q", "response": "a", "label": True}])
    with pytest.raises(DataError, match="no preference pairs"):
        load_pairs(tmp_path / "t1.jsonl")
