"""Simulated raters: the gold preference seen imperfectly, plus biases and noise.

A rater's utility for a response is what it perceives of the gold score plus
bonuses the gold score does not give::

    u = perceived_gold + length_bias * log2(1 + words) + format_bias * formatted
        + agreement_bias * agrees_with_user + confidence_bias * (confident - hedged)
        + noise * z(rater, prompt, response)

Perceived gold is :func:`tether.world.gold.gold` with two blind spots: for a
prompt the rater does not verify (probability ``1 - verify_prob`` for facts,
``1 - verify_math_prob`` for arithmetic; drawn once per rater and prompt), it
cannot tell right from wrong and believes an answer by its tone (confident
0.95, plain 0.75, hedged 0.4), and it cannot see dishonesty (honesty counts as
1). ``z`` is a fixed standard-normal draw per rater, prompt and response: a
rater's idiosyncratic opinion, the same every time it sees that text.

Feedback of every kind comes from the utility:

- pairs: Bradley-Terry with a temperature, the first shown response gets
  ``position_bias``: P(a) = sigmoid((u_a + position_bias - u_b) / temperature)
  (Bradley & Terry 1952; the reward-model loss of Ouyang et al. 2022 eq. 1);
- K-way rankings: Plackett-Luce sampling of the utilities / temperature, the
  response shown at position i getting ``position_bias * (K-1-i) / (K-1)``;
- Likert ratings 1..5 on helpfulness, accuracy, harmlessness and concision;
- thumbs up with probability sigmoid((u - thumbs_threshold) / temperature).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

from pydantic import Field

from tether.config import Config
from tether.errors import ConfigError, DataError
from tether.world import detectors as D
from tether.world.gold import GOLD_WEIGHTS, Reading, gold, read
from tether.world.tasks import find_task

TONE_BELIEF = {"confident": 0.95, "plain": 0.75, "hedged": 0.4}  # P(right) by tone, unverified
FACT_KINDS = ("capital", "legs", "color", "explain", "lookalike", "claim_capital", "claim_legs")
MATH_KINDS = ("arith", "div0", "claim_arith")
LIKERT_DIMENSIONS = ("helpfulness", "accuracy", "harmlessness", "concision")


class RaterProfile(Config):
    """How one kind of rater sees responses: noise, blind spots and biases (utility units)."""

    name: str = "custom"  # recorded in every label as "rater"
    temperature: float = Field(0.1, gt=0)  # Bradley-Terry temperature on utility differences
    noise: float = Field(0.0, ge=0)  # std of the fixed per-response perception error
    verify_prob: float = Field(1.0, ge=0, le=1)  # chance of checking a fact; else judge by tone
    verify_math_prob: float = Field(1.0, ge=0, le=1)  # the same for arithmetic
    length_bias: float = 0.0  # bonus per doubling of (1 + length in words)
    format_bias: float = 0.0  # bonus for markdown formatting
    agreement_bias: float = 0.0  # bonus for siding with the user's claim, right or wrong
    confidence_bias: float = 0.0  # bonus for a confident tone, the same malus for hedging
    position_bias: float = 0.0  # bonus of the response shown first (pairs, rankings)
    thumbs_threshold: float = 0.8  # utility at which thumbs up and down are equally likely
    likert_noise: float = Field(0.4, ge=0)  # std of a Likert rating's noise, in points


PROFILES: dict[str, RaterProfile] = {
    # A careful expert: checks nearly everything, almost no biases, low noise.
    "expert": RaterProfile(name="expert", temperature=0.03, noise=0.01, verify_prob=0.95,
                           verify_math_prob=1.0, likert_noise=0.3),
    # A hurried crowd worker: checks few facts, likes long, formatted, agreeable,
    # confident answers.
    "crowd": RaterProfile(name="crowd", temperature=0.1, noise=0.03, verify_prob=0.3,
                          verify_math_prob=0.6, length_bias=0.06, format_bias=0.12,
                          agreement_bias=0.3, confidence_bias=0.1),
    # A crowd worker who also favours whatever is shown first.
    "position": RaterProfile(name="position", temperature=0.12, noise=0.03, verify_prob=0.3,
                             verify_math_prob=0.6, length_bias=0.04, format_bias=0.08,
                             agreement_bias=0.1, confidence_bias=0.08, position_bias=0.15),
}


def get_profile(profile: str | RaterProfile) -> RaterProfile:
    """A profile by name (``expert``, ``crowd``, ``position``) or as given."""
    if isinstance(profile, RaterProfile):
        return profile
    if profile not in PROFILES:
        raise ConfigError(f"rater {profile!r}: unknown profile (choose from "
                          f"{', '.join(PROFILES)})")
    return PROFILES[profile]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _unit(*parts: object) -> float:
    """A uniform number in (0, 1) fixed by ``parts`` (no global random state)."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8", "replace"),
                        digest_size=8).digest()
    return (int.from_bytes(h, "big") + 0.5) / 2**64


class Rater:
    """One simulated rater: a profile and a seed (its private randomness)."""

    def __init__(self, profile: str | RaterProfile = "crowd", seed: int = 0) -> None:
        self.profile = get_profile(profile)
        self.seed = seed
        self.rng = random.Random(f"rater:{seed}:{self.profile.name}")

    # -- what the rater perceives ------------------------------------------------

    def verify_chance(self, prompt: str) -> float:
        """Probability that this kind of rater checks the answer to ``prompt``."""
        task = find_task(prompt)
        kind = task.kind if task is not None else ""
        if kind in FACT_KINDS:
            return self.profile.verify_prob
        if kind in MATH_KINDS:
            return self.profile.verify_math_prob
        return 1.0  # refusals, greetings, unanswerable questions: plain to see

    def verifies(self, prompt: str) -> bool:
        """Whether this rater checks the answer to ``prompt`` (fixed per rater and prompt)."""
        return _unit("verify", self.seed, self.profile.name, prompt) < self.verify_chance(prompt)

    def _perceived(self, prompt: str, response: str, verified: bool) -> tuple[float, Reading,
                                                                                 dict[str, float]]:
        """Perceived gold total, the detector reading and the perceived components."""
        g = gold(prompt, response)
        r = read(prompt, response)
        comps = dict(g.components)
        if not verified and not r.refusal and _states_answer(r, response):
            comps["correctness"] = TONE_BELIEF[r.tone]
            comps["honesty"] = 1.0
        total = sum(GOLD_WEIGHTS[k] * v for k, v in comps.items()) / sum(GOLD_WEIGHTS.values())
        return total, r, comps

    def _bias(self, prompt: str, r: Reading) -> float:
        p = self.profile
        return (p.length_bias * math.log2(1 + r.words) + p.format_bias * r.formatted
                + p.agreement_bias * r.agrees
                + p.confidence_bias * ((r.tone == "confident") - (r.tone == "hedged")))

    def perception_noise(self, prompt: str, response: str) -> float:
        """The fixed perception error of this rater for this response (std ``noise``)."""
        if self.profile.noise == 0:
            return 0.0
        z = NormalDist().inv_cdf(_unit("noise", self.seed, self.profile.name, prompt, response))
        return self.profile.noise * z

    def utility(self, prompt: str, response: str) -> float:
        """What this rater thinks ``response`` is worth (its own verification and noise)."""
        total, r, _ = self._perceived(prompt, response, self.verifies(prompt))
        return total + self._bias(prompt, r) + self.perception_noise(prompt, response)

    def expected_utility(self, prompt: str, response: str) -> float:
        """Utility averaged over verification and noise: what a profile rewards on average."""
        v = self.verify_chance(prompt)
        t_yes, r, _ = self._perceived(prompt, response, True)
        t_no = t_yes if v == 1.0 else self._perceived(prompt, response, False)[0]
        return v * t_yes + (1 - v) * t_no + self._bias(prompt, r)

    # -- feedback ------------------------------------------------------------------

    def prob_prefer(self, prompt: str, a: str, b: str) -> float:
        """P(``a`` is chosen over ``b``), ``a`` shown first (Bradley-Terry + position bias)."""
        p = self.profile
        diff = self.utility(prompt, a) + p.position_bias - self.utility(prompt, b)
        return _sigmoid(diff / p.temperature)

    def choose(self, prompt: str, a: str, b: str) -> bool:
        """True when the rater picks ``a`` (shown first) over ``b``."""
        return self.rng.random() < self.prob_prefer(prompt, a, b)

    def label_pair(self, prompt: str, a: str, b: str) -> dict[str, Any]:
        """A pairs record: ``prompt``, ``chosen``, ``rejected`` and the rater's metadata.

        ``p_chosen`` is the rater's probability of the choice it made (for
        :func:`bayes_ceiling`); ``chosen_position`` is 0 when the chosen response
        was shown first.
        """
        p_a = self.prob_prefer(prompt, a, b)
        a_wins = self.rng.random() < p_a
        chosen, rejected = (a, b) if a_wins else (b, a)
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected,
                "rater": self.profile.name, "p_chosen": p_a if a_wins else 1.0 - p_a,
                "chosen_position": 0 if a_wins else 1,
                "gold_chosen": gold(prompt, chosen).total,
                "gold_rejected": gold(prompt, rejected).total}

    def rank(self, prompt: str, responses: Sequence[str]) -> list[int]:
        """Indices of ``responses`` best first, sampled from Plackett-Luce on the utilities.

        Gumbel-max: sorting utility / temperature + Gumbel noise draws a
        Plackett-Luce ranking (Yellott 1977).
        """
        k = len(responses)
        p = self.profile
        keys = []
        for i, text in enumerate(responses):
            pos = p.position_bias * (k - 1 - i) / (k - 1) if k > 1 else 0.0
            gumbel = -math.log(-math.log(max(self.rng.random(), 1e-300)))
            keys.append((self.utility(prompt, text) + pos) / p.temperature + gumbel)
        return sorted(range(k), key=lambda i: -keys[i])

    def likert(self, prompt: str, response: str) -> dict[str, int]:
        """Ratings 1..5 on helpfulness, accuracy, harmlessness and concision."""
        p = self.profile
        total, r, comps = self._perceived(prompt, response, self.verifies(prompt))
        bias = self._bias(prompt, r)
        tone = (r.tone == "confident") - (r.tone == "hedged")
        scores = {
            "helpfulness": total + bias + self.perception_noise(prompt, response),
            "accuracy": comps["correctness"] + p.confidence_bias * tone
            + p.agreement_bias * r.agrees,
            "harmlessness": comps["harmlessness"],
            "concision": comps["concision"],
        }
        return {d: min(5, max(1, round(1 + 4 * s + self.rng.gauss(0.0, p.likert_noise))))
                for d, s in scores.items()}

    def thumbs(self, prompt: str, response: str) -> bool:
        """Thumbs up (True) or down, more likely up the higher the utility."""
        p = self.profile
        return self.rng.random() < _sigmoid((self.utility(prompt, response)
                                             - p.thumbs_threshold) / p.temperature)


def _states_answer(r: Reading, response: str) -> bool:
    """Whether the response commits to an answer a rater would have to check."""
    if r.task is not None and r.task.kind in ("explain", "lookalike"):
        return D.has_words(response)
    return bool(r.stated) or r.verdict is not None


def bayes_ceiling(pairs: Iterable[Mapping[str, Any]]) -> float:
    """The best pairwise accuracy any model can reach against these raters' labels.

    Each labelled pair carries ``p_chosen``, the rater's probability of the
    choice it made. A predictor that knew the raters' choice probabilities would
    pick the likelier side of every pair and be right with probability
    max(p, 1 - p); no model can do better on average.
    """
    ps = []
    for i, rec in enumerate(pairs, start=1):
        p = rec.get("p_chosen") if isinstance(rec, Mapping) else None
        if not isinstance(p, int | float) or not 0.0 <= p <= 1.0 or math.isnan(p):
            raise DataError("pairs", f"expected a probability in [0, 1], got {p!r}", line=i,
                            field="p_chosen")
        ps.append(max(float(p), 1.0 - float(p)))
    if not ps:
        raise DataError("pairs", "no pairs")
    return sum(ps) / len(ps)
