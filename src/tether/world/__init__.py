"""The built-in world: prompts, a gold preference, simulated raters, corpora (no torch).

Modules: :mod:`~tether.world.tasks` (every prompt, splits, lookup by text),
:mod:`~tether.world.styles` (response styles), :mod:`~tether.world.detectors`
(reading free text), :mod:`~tether.world.gold` (the true preference),
:mod:`~tether.world.raters` (biased, noisy raters, Bayes ceiling),
:mod:`~tether.world.corpora` (``tether world build``), :mod:`~tether.world.label`
(``tether world label``) and :mod:`~tether.world.optimum` (raters' vs gold's
favourite style). See README, "The built-in world".
"""

from tether.world.gold import GOLD_WEIGHTS, GoldScore, evaluate_responses, gold, gold_scores
from tether.world.raters import PROFILES, Rater, RaterProfile, bayes_ceiling

__all__ = ["GOLD_WEIGHTS", "PROFILES", "GoldScore", "Rater", "RaterProfile", "bayes_ceiling",
           "evaluate_responses", "gold", "gold_scores"]
