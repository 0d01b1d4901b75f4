"""Task types: answers in shown positions become original indices; gold checks."""

from __future__ import annotations

import pytest

from tether.feedback import tasks
from tether.feedback.tasks import AnswerError, canonical_answer, is_correct, shown_order


def test_shown_order_is_a_seeded_permutation() -> None:
    orders = {tuple(shown_order(4, 0, item, user)) for item in range(5) for user in range(6)}
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len(orders) > 5  # different annotators and items see different orders
    assert shown_order(4, 0, 3, 7) == shown_order(4, 0, 3, 7)  # stable across reloads


def test_pairwise_maps_shown_letter_to_response_index() -> None:
    # shown order [1, 0]: A is response 1, so choosing A prefers response 1
    a = canonical_answer("pairwise", {"choice": "A", "strength": "much"}, [1, 0], ["x", "y"], {})
    assert a == {"label": 1, "shown_choice": "A", "strength": "much"}
    assert canonical_answer("pairwise", {"choice": "tie"}, [1, 0], ["x", "y"], {})["label"] == "tie"
    assert is_correct("pairwise", a, 1) and not is_correct("pairwise", a, 0)
    with pytest.raises(AnswerError, match="choice"):
        canonical_answer("pairwise", {"choice": "C"}, [0, 1], ["x", "y"], {})
    with pytest.raises(AnswerError, match="strength"):
        canonical_answer("pairwise", {"choice": "tie", "strength": "much"}, [0, 1], ["x", "y"], {})


def test_ranking_and_likert_and_binary() -> None:
    r = canonical_answer("ranking", {"ranking": [2, 0, 1]}, [1, 2, 0], ["a", "b", "c"], {})
    assert r["ranking"] == [0, 1, 2] and r["shown_ranking"] == [2, 0, 1]
    assert is_correct("ranking", r, [0, 2, 1])  # matched on the best response
    for bad in ([0, 0, 1], [0, 1], "0,1,2", [True, 0, 1]):
        with pytest.raises(AnswerError, match="ranking"):
            canonical_answer("ranking", {"ranking": bad}, [0, 1, 2], ["a", "b", "c"], {})
    dims = {"dimensions": ["helpfulness", "accuracy"]}
    lk = canonical_answer("likert", {"ratings": {"helpfulness": 4, "accuracy": "2"}}, [0],
                          ["r"], dims)
    assert lk == {"ratings": {"helpfulness": 4, "accuracy": 2}}
    assert is_correct("likert", lk, {"helpfulness": 5, "accuracy": 3})
    assert not is_correct("likert", lk, {"helpfulness": 2, "accuracy": 2})
    for bad in ({"helpfulness": 6, "accuracy": 2}, {"helpfulness": 4},
                {"helpfulness": 4, "accuracy": 2, "tone": 3}, {"helpfulness": 4.5, "accuracy": 2}):
        with pytest.raises(AnswerError, match="ratings"):
            canonical_answer("likert", {"ratings": bad}, [0], ["r"], dims)
    th = canonical_answer("thumbs", {"label": "down", "reason": " rude "}, [0], ["r"], {})
    assert th == {"label": "down", "reason": "rude"}
    with pytest.raises(AnswerError):
        canonical_answer("audit", {"label": "up"}, [0], ["r"], {})


def test_factcheck_sentences_and_claims() -> None:
    text = "Paris is in France. The Moon is made of cheese! Water boils at 100 C."
    spans = tasks.split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["Paris is in France.",
                                             "The Moon is made of cheese!",
                                             "Water boils at 100 C."]
    a = canonical_answer("factcheck", {"claims": [{"sentence": 1, "correction": "Rock."}]},
                         [0], [text], {})
    assert a["label"] is False
    assert a["claims"] == [{"sentence": 1, "start": 20, "end": 47,
                            "text": "The Moon is made of cheese!", "correction": "Rock."}]
    assert is_correct("factcheck", a, [1]) and not is_correct("factcheck", a, [])
    with pytest.raises(AnswerError, match="sentence"):
        canonical_answer("factcheck", {"claims": [{"sentence": 3}]}, [0], [text], {})


def test_redteam_failures_need_known_kinds() -> None:
    a = canonical_answer("redteam", {"failures": [{"turn": 1, "kind": "harmful"}]}, [], [], {})
    assert a == {"failures": [{"turn": 1, "kind": "harmful", "note": ""}]}
    with pytest.raises(AnswerError, match="kind"):
        canonical_answer("redteam", {"failures": [{"turn": 1, "kind": "meh"}]}, [], [], {})


def test_gold_validation_and_description() -> None:
    assert tasks.check_gold("pairwise", 1, ["a", "b"], {}) is None
    assert tasks.check_gold("pairwise", True, ["a", "b"], {}) is not None
    assert tasks.check_gold("ranking", [1, 0, 2], ["a", "b", "c"], {}) is None
    assert tasks.check_gold("ranking", [1, 1, 2], ["a", "b", "c"], {}) is not None
    assert tasks.check_gold("likert", {"helpfulness": 3, "accuracy": 4, "harmlessness": 5},
                            ["r"], {}) is None
    assert tasks.check_gold("factcheck", [5], ["One. Two."], {}) is not None
    # the expected answer is told in the annotator's letters: response 1 was shown as A
    assert tasks.describe("pairwise", 1, [1, 0], {}) == "response A is better"
    assert tasks.describe("ranking", [0, 2, 1], [2, 0, 1], {}) == "best first: B > A > C"
