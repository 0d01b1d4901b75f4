"""A reward given by a Python function, named by import path ("pkg.module:func").

The function takes the batch and returns one number per response::

    def my_reward(prompts: list[str], responses: list[str]) -> list[float]: ...

Prompts are strings (the last user message of a chat prompt). Any sequence of
numbers or a tensor [B] is accepted; a wrong count or a non-finite score is a
one-line error naming the function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from tether.data.records import Prompt
from tether.errors import ConfigError
from tether.rewards.base import as_scores, check_batch, prompt_str


def import_function(spec: str) -> Callable[..., Any]:
    """``"pkg.module:func"`` -> the function; a ConfigError names what is missing."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"reward function {spec!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"reward function {spec!r}: cannot import {module_name!r} ({e})") \
            from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"reward function {spec!r}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"reward function {spec!r}: not callable")
    return obj


class FunctionReward:
    """Scores with ``func(prompts, responses) -> [B] numbers`` imported from ``spec``."""

    def __init__(self, spec: str) -> None:
        self.func = import_function(spec)
        self.name = spec

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """The function's scores as a float32 tensor [B]."""
        check_batch(prompts, responses)
        values = self.func([prompt_str(p) for p in prompts], list(responses))
        return as_scores(values, len(responses), self.name)
