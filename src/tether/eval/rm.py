"""How good a proxy is a reward model? Metrics as pure functions on score arrays.

The reward model is the bottleneck of RLHF: the policy can only be as aligned as
the proxy it optimises. These functions measure the proxy on held-out pairs:

- pairwise accuracy (overall and per category): does it rank the chosen
  response above the rejected one;
- calibration: expected calibration error (ECE) of the Bradley-Terry
  probability sigmoid(r_chosen - r_rejected), with equal-width bins over the
  confidence max(p, 1 - p) (top-label ECE, Guo et al. 2017, eq. 3), and a
  reliability diagram;
- bias: Pearson and Spearman correlation of the score with response length
  (words) and with formatting (markdown), and how often the longer response
  wins. On world data the same correlations of the gold score are reported
  beside them: what the RM adds on top of gold is bias it learnt from raters;
- on world data: accuracy against the gold preference and the raters' Bayes
  ceiling mean(max(p, 1 - p)) of the labels' own choice probabilities, and the
  ceiling of a model that sees only the texts (:func:`text_bayes_ceiling`:
  the raters' private draws marginalised out), which is the one a reward model
  can actually reach on held-out prompts.

:func:`evaluate_reward_model` scores pairs with any
:class:`~tether.rewards.RewardSource` and writes ``summary.json`` and
``reliability.png``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tether.data.io import atomic_file

if TYPE_CHECKING:
    from tether.data.records import PreferencePair
    from tether.rewards.base import RewardSource

ArrayLike = Sequence[float] | np.ndarray


def pairwise_accuracy(chosen: ArrayLike, rejected: ArrayLike) -> float:
    """Share of pairs where chosen scores above rejected; a tie counts half."""
    c, r = np.asarray(chosen, float), np.asarray(rejected, float)  # [N]
    return float(np.mean((c > r) + 0.5 * (c == r)))


def accuracy_by_category(chosen: ArrayLike, rejected: ArrayLike,
                         categories: Sequence[str]) -> dict[str, float]:
    """Pairwise accuracy per category (sorted by name)."""
    c, r = np.asarray(chosen, float), np.asarray(rejected, float)
    cats = np.asarray(categories, dtype=object)
    return {str(k): pairwise_accuracy(c[cats == k], r[cats == k]) for k in sorted(set(categories))}


def preference_probs(chosen: ArrayLike, rejected: ArrayLike) -> np.ndarray:
    """Bradley-Terry P(chosen preferred) = sigmoid(r_chosen - r_rejected), [N]."""
    d = np.asarray(chosen, float) - np.asarray(rejected, float)
    return 0.5 * (1.0 + np.tanh(0.5 * d))  # sigmoid without overflow for large |d|


def calibration_bins(probs: ArrayLike, n_bins: int = 10) -> list[dict[str, float]]:
    """Equal-width bins of confidence max(p, 1-p) over [0.5, 1].

    Each bin reports its range, the number of pairs, the mean confidence and the
    accuracy (share where the more probable side is the labelled chosen; p = 0.5
    counts half). A calibrated model has accuracy = confidence in every bin.
    """
    p = np.asarray(probs, float)  # [N]
    conf = np.maximum(p, 1.0 - p)  # [N]
    correct = np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))  # [N]
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)  # [N]
    bins = []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n,
                     "confidence": float(conf[sel].mean()) if n else float("nan"),
                     "accuracy": float(correct[sel].mean()) if n else float("nan")})
    return bins


def expected_calibration_error(probs: ArrayLike, n_bins: int = 10) -> float:
    """ECE = sum over bins of (n_b / N) * |accuracy_b - confidence_b| (Guo et al. 2017)."""
    bins = calibration_bins(probs, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        return float("nan")
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"])
                     for b in bins if b["count"]))


def reliability_diagram(probs: ArrayLike, path: str | os.PathLike[str], n_bins: int = 10,
                        title: str = "Reward model reliability") -> Path:
    """Save a reliability diagram (accuracy vs confidence per bin, with counts) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = calibration_bins(probs, n_bins)
    width = 0.5 / n_bins
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    used = [b for b in bins if b["count"]]
    ax.bar([b["lo"] for b in used], [b["accuracy"] for b in used], width=width, align="edge",
           edgecolor="black", color="#4c78a8", label="accuracy")
    ax.plot([0.5, 1.0], [0.5, 1.0], "--", color="gray", label="perfect calibration")
    ax.plot([b["confidence"] for b in used], [b["accuracy"] for b in used], "o", color="#e45756",
            label="accuracy at mean confidence")
    ece = expected_calibration_error(probs, n_bins)
    ax.set(ylabel="accuracy", ylim=(0, 1.02), title=f"{title} (ECE {ece:.3f})")
    ax.legend(loc="lower right", fontsize=8)
    ax_n.bar([b["lo"] for b in bins], [b["count"] for b in bins], width=width, align="edge",
             edgecolor="black", color="#bbbbbb")
    ax_n.set(xlabel="confidence max(p, 1 - p), p = sigmoid(r_chosen - r_rejected)",
             ylabel="pairs", xlim=(0.5, 1.0))
    fig.tight_layout()
    out = Path(path)
    try:
        with atomic_file(out, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation; NaN when either side is constant or has < 2 values."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), float)
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):  # average the ranks of tied values
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (Pearson on average ranks); NaN when constant."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.size < 2:
        return float("nan")
    return pearson(_ranks(a), _ranks(b))


def response_length(text: str) -> int:
    """Length of a response in words (whitespace-separated)."""
    return len(text.split())


_MARKDOWN = re.compile(r"^\s*(#{1,6}\s|[-*+]\s|\d+[.)]\s|>\s)|\*\*[^*]+\*\*|__[^_]+__", re.M)


def markdown_markers(text: str) -> int:
    """Count markdown markers: headers, bullets, numbered items, quotes, bold spans."""
    return len(_MARKDOWN.findall(text))


def formatting_indicator() -> Callable[[str], float]:
    """The formatting detector: the world's ``is_formatted`` when present, else markdown count."""
    try:
        from tether.world.detectors import is_formatted
    except ImportError:
        return lambda text: float(markdown_markers(text))
    return lambda text: float(is_formatted(text))


def bias_correlations(scores: ArrayLike, texts: Sequence[str], prefix: str = "") -> dict[str, float]:
    """Correlations of per-response scores with length and formatting."""
    fmt = formatting_indicator()
    s = np.asarray(scores, float)
    length = np.array([response_length(t) for t in texts], float)
    formatted = np.array([fmt(t) for t in texts], float)
    return {f"{prefix}length_pearson": pearson(s, length),
            f"{prefix}length_spearman": spearman(s, length),
            f"{prefix}format_pearson": pearson(s, formatted),
            f"{prefix}format_spearman": spearman(s, formatted)}


def prefers_longer(chosen: ArrayLike, rejected: ArrayLike, chosen_texts: Sequence[str],
                   rejected_texts: Sequence[str]) -> float:
    """Among pairs of different lengths, the share where the longer response scores higher."""
    c, r = np.asarray(chosen, float), np.asarray(rejected, float)
    lc = np.array([response_length(t) for t in chosen_texts])
    lr = np.array([response_length(t) for t in rejected_texts])
    diff = lc != lr
    if not diff.any():
        return float("nan")
    longer_wins = np.where(lc > lr, c > r, r > c)[diff]
    return float(longer_wins.mean())


def _world_bayes_ceiling(p_chosen: list[float]) -> float:
    """mean(max(p, 1-p)) over the raters' own choice probabilities."""
    try:
        from tether.world.raters import bayes_ceiling
    except ImportError:
        return float(np.mean(np.maximum(p_chosen, 1.0 - np.asarray(p_chosen))))
    return float(bayes_ceiling([{"p_chosen": p} for p in p_chosen]))


def text_bayes_ceiling(pairs: Sequence[PreferencePair], n_raters: int = 64) -> float | None:
    """The best accuracy a model that sees only (prompt, chosen, rejected) can reach.

    :func:`tether.world.raters.bayes_ceiling` averages max(p, 1 - p) of each
    label's own choice probability ``p_chosen``. That ``p`` depends on draws
    private to the labelling rater: whether it checked this prompt's facts and
    its fixed perception noise for these texts. On held-out prompts no model can
    know them, so a text-only model's ceiling is mean(max(q, 1 - q)) with ``q``
    the choice probability marginalised over those draws. ``q`` is estimated here
    as the mean ``prob_prefer`` of ``n_raters`` raters of the same profile with
    other seeds (the order shown, ``chosen_position``, kept). None unless every
    pair names the same built-in world rater profile in ``rater``.
    """
    names = {p.metadata.get("rater") for p in pairs}
    if len(names) != 1 or not pairs:
        return None
    try:
        from tether.world.raters import PROFILES, Rater
    except ImportError:
        return None
    name = names.pop()
    if name not in PROFILES:
        return None
    from tether.data.records import prompt_text

    raters = [Rater(name, seed) for seed in range(1000, 1000 + n_raters)]
    total = 0.0
    for p in pairs:
        shown_first = p.metadata.get("chosen_position", 0) == 0
        a, b = (p.chosen, p.rejected) if shown_first else (p.rejected, p.chosen)
        prompt = prompt_text(p.prompt)
        q_a = sum(r.prob_prefer(prompt, a, b) for r in raters) / n_raters
        q = q_a if shown_first else 1.0 - q_a  # P(the label is `chosen` | texts)
        total += max(q, 1.0 - q)
    return total / len(pairs)


def evaluate_scores(pairs: Sequence[PreferencePair], chosen: ArrayLike, rejected: ArrayLike,
                    n_bins: int = 10) -> dict[str, Any]:
    """Every reward-model metric from the scores of the chosen and rejected responses.

    Uses pair metadata when present: ``category`` (per-category accuracy),
    ``gold_chosen``/``gold_rejected`` (accuracy against gold, gold's own biases)
    and ``p_chosen`` (the raters' Bayes ceiling).
    """
    c, r = np.asarray(chosen, float), np.asarray(rejected, float)  # [N]
    if len(pairs) != len(c) or len(c) != len(r):
        raise ValueError(f"{len(pairs)} pairs but {len(c)} chosen / {len(r)} rejected scores")
    probs = preference_probs(c, r)
    texts = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    scores = np.concatenate([c, r])  # [2N]
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "rm/accuracy": pairwise_accuracy(c, r),
        "rm/ece": expected_calibration_error(probs, n_bins),
        "rm/margin_mean": float(np.mean(c - r)),
        "rm/score_mean": float(scores.mean()),
        "rm/score_std": float(scores.std()),
        "bias/prefers_longer": prefers_longer(c, r, [p.chosen for p in pairs],
                                              [p.rejected for p in pairs]),
    }
    out.update({f"bias/{k}": v for k, v in bias_correlations(scores, texts).items()})
    cats = [str(p.metadata.get("category", "")) for p in pairs]
    if any(cats):
        out["rm/accuracy_by_category"] = accuracy_by_category(c, r, cats)

    gold = [(p.metadata.get("gold_chosen"), p.metadata.get("gold_rejected")) for p in pairs]
    if all(isinstance(g, int | float) and isinstance(h, int | float) for g, h in gold):
        gc, gr = np.array([g for g, _ in gold], float), np.array([h for _, h in gold], float)
        decided = gc != gr  # pairs where gold has a preference
        gold_sign = np.sign(gc - gr)[decided]  # +1: gold agrees with the label
        rm_sign = np.sign(c - r)[decided]
        out["gold/pairs"] = int(decided.sum())
        out["gold/accuracy"] = float(np.mean((rm_sign == gold_sign) + 0.5 * (rm_sign == 0)))
        out["gold/label_accuracy"] = float(np.mean(gold_sign > 0))  # raters vs gold
        out.update({f"gold/{k}": v for k, v in
                    bias_correlations(np.concatenate([gc, gr]), texts).items()})
    p_chosen = [p.metadata.get("p_chosen") for p in pairs]
    if all(isinstance(p, int | float) for p in p_chosen):
        out["raters/bayes_ceiling"] = _world_bayes_ceiling([float(p) for p in p_chosen])
        out["rm/accuracy_gap_to_ceiling"] = out["raters/bayes_ceiling"] - out["rm/accuracy"]
        text_ceiling = text_bayes_ceiling(pairs)
        if text_ceiling is not None:
            out["raters/bayes_ceiling_text"] = text_ceiling
            out["rm/accuracy_gap_to_text_ceiling"] = text_ceiling - out["rm/accuracy"]
    out["calibration"] = calibration_bins(probs, n_bins)
    return _finite_or_none(out)


def _finite_or_none(x: Any) -> Any:
    """NaN and inf -> None, so summary.json stays valid JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite_or_none(v) for v in x]
    return x


def evaluate_reward_model(source: RewardSource, pairs: Sequence[PreferencePair],
                          out_dir: str | os.PathLike[str] | None = None, n_bins: int = 10,
                          batch_size: int = 64) -> dict[str, Any]:
    """Score ``pairs`` with ``source``; write ``summary.json`` and ``reliability.png``."""
    chosen: list[float] = []
    rejected: list[float] = []
    for i in range(0, len(pairs), batch_size):
        batch = pairs[i:i + batch_size]
        prompts = [p.prompt for p in batch]
        # chosen and rejected in one call: one padded batch, one forward
        s = source.score(prompts + prompts, [p.chosen for p in batch] + [p.rejected for p in batch])
        s = [float(v) for v in s]
        chosen += s[:len(batch)]
        rejected += s[len(batch):]
    summary = {"reward": source.name, **evaluate_scores(pairs, chosen, rejected, n_bins)}
    if out_dir is not None:
        from tether.config import atomic_write_text

        out = Path(out_dir)
        reliability_diagram(preference_probs(chosen, rejected), out / "reliability.png", n_bins,
                            title=f"{source.name}")
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate_dir(model: str | os.PathLike[str], data: str | os.PathLike[str],
                 out: str | os.PathLike[str] | None = None, kind: str = "auto",
                 batch_size: int = 32, max_length: int = 512, n_bins: int = 10,
                 device: str = "auto") -> dict[str, Any]:
    """``tether rm eval``: score a feedback file with a reward model (or ensemble) directory.

    ``data`` is any feedback file :func:`tether.data.records.load_pairs` reads;
    ``out`` defaults to ``eval/`` beside the model directory.
    """
    from tether.config import build_config
    from tether.data.records import load_pairs
    from tether.rewards.config import RewardConfig, load_reward_source

    pairs = load_pairs(data, kind=kind)  # type: ignore[arg-type]
    cfg = build_config(RewardConfig, {"kind": "model", "path": str(model),
                                      "batch_size": batch_size, "max_length": max_length},
                       source="rm eval")
    from tether.engine.dist import resolve_device

    source = load_reward_source(cfg, device=str(resolve_device(device)))
    out_dir = Path(out) if out is not None else Path(model).parent / "eval"
    summary = evaluate_reward_model(source, pairs, out_dir, n_bins, batch_size)
    summary["data"], summary["out"] = str(data), str(out_dir)
    from tether.config import atomic_write_text

    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
