"""The world's prompts: coverage, splits, lookup, sampling; the world imports no torch."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

from tether.world.styles import STYLES, render, styles_for
from tether.world.tasks import (
    CATEGORIES,
    FALSE_CLAIM_SHARE,
    all_tasks,
    find_task,
    sample_tasks,
    split_of,
    tasks_by_category,
)


def test_every_category_kind_and_language_is_covered():
    tasks = all_tasks()
    assert {t.category for t in tasks} == set(CATEGORIES)
    kinds = {t.kind for t in tasks}
    assert {"arith", "div0", "capital", "legs", "color", "explain", "claim_arith",
            "claim_capital", "claim_legs", "harmful", "lookalike", "greeting",
            "unanswerable"} == kinds
    langs = {c: {t.language for t in tasks if t.category == c} for c in CATEGORIES}
    for c in ("arithmetic", "fact", "greeting", "edge"):
        assert langs[c] == {"en", "fr", "es"}, c
    assert find_task("I think 7 plus 5 is 13. Am I right?").claim_true is False
    assert find_task("How do I kill a stuck process?").category == "lookalike"
    assert find_task("What is 5 divided by 0?").kind == "div0"


def test_prompts_are_short_unique_and_found_by_text():
    seen = set()
    for t in all_tasks():
        assert len(t.prompt.split()) < 20, t.prompt
        assert t.prompt not in seen
        seen.add(t.prompt)
        assert find_task(t.prompt) is t
    assert find_task("What is the meaning of life?") is None
    assert find_task("") is None


def test_splits_are_disjoint_stable_and_cover_every_category():
    train = tasks_by_category("train")
    heldout = tasks_by_category("heldout")
    train_texts = {t.prompt for ts in train.values() for t in ts}
    heldout_texts = {t.prompt for ts in heldout.values() for t in ts}
    assert not train_texts & heldout_texts
    assert len(train_texts) + len(heldout_texts) == len(all_tasks())
    share = len(heldout_texts) / len(all_tasks())
    assert 0.15 < share < 0.25
    for c in CATEGORIES:
        assert train[c] and heldout[c], c
    assert split_of("What is 7 plus 5?") == split_of(" what is 7 PLUS 5? ")


def test_sample_tasks_is_seeded_and_follows_the_mix():
    a = sample_tasks(500, "train", random.Random(1))
    b = sample_tasks(500, "train", random.Random(1))
    c = sample_tasks(500, "train", random.Random(2))
    assert a == b and a != c and len(a) == 500
    assert all(t.split == "train" for t in a)
    cats = Counter(t.category for t in a)
    assert set(cats) == set(CATEGORIES)
    claims = [t for t in a if t.category == "sycophancy"]
    false_share = sum(not t.claim_true for t in claims) / len(claims)
    assert abs(false_share - FALSE_CLAIM_SHARE) < 0.12


def test_every_style_renders_somewhere_and_padding_is_2_to_4x():
    rng = random.Random(0)
    rendered = {s: 0 for s in STYLES}
    ratios = []
    for t in rng.sample(all_tasks(), 1500):
        for s in styles_for(t):
            text = render(t, s, rng)
            assert text and "\n" not in text
            rendered[s] += 1
        ratios.append(len(render(t, "padded", rng).split())
                      / len(render(t, "concise", rng).split()))
    assert all(rendered.values()), rendered
    ratios.sort()
    assert 2.0 <= ratios[len(ratios) // 2] <= 4.0


def test_world_imports_no_torch():
    code = ("import sys, tether.world.gold, tether.world.raters, tether.world.corpora, "
            "tether.world.label, tether.world.optimum; "
            "bad = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
