"""Tiny Llama models built from scratch, for tests, quick runs and the built-in world.

A tiny model is an ordinary ``LlamaForCausalLM``: it saves, loads, generates and
takes LoRA exactly like a real checkpoint, so every code path a user's model
takes is exercised on a CPU in seconds.

    model, tokenizer = tiny_model_and_tokenizer()          # < 2 s on one CPU core
    model = create_tiny_model(tokenizer, {"num_hidden_layers": 4}, seed=1)
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from tether.errors import ConfigError
from tether.models.tokenizer import train_tokenizer

# Small enough for a CPU test, large enough to have every part of a real Llama
# (grouped-query attention: 4 query heads share 2 key/value heads; RoPE; SwiGLU).
TINY_DEFAULTS: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 172,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
    "initializer_range": 0.02,
}


def tiny_llama_config(vocab_size: int, **overrides: Any) -> LlamaConfig:
    """A tiny ``LlamaConfig`` (see ``TINY_DEFAULTS``); ``overrides`` may set any Llama field.

    An override that is not a ``LlamaConfig`` field is a :class:`ConfigError` (a
    typo would otherwise be accepted silently by ``LlamaConfig``).
    """
    known = set(LlamaConfig().to_dict())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"model.tiny: unknown Llama config key {unknown[0]!r}")
    if vocab_size < 1:
        raise ConfigError(f"model.tiny: vocab_size must be positive (got {vocab_size})")
    fields = {**TINY_DEFAULTS, "vocab_size": vocab_size, **overrides}
    heads, kv = fields["num_attention_heads"], fields["num_key_value_heads"]
    if fields["hidden_size"] % heads or heads % kv:
        raise ConfigError(
            f"model.tiny: hidden_size {fields['hidden_size']} must divide by "
            f"num_attention_heads {heads}, which must divide by num_key_value_heads {kv}")
    return LlamaConfig(**fields)


def create_tiny_model(tokenizer: PreTrainedTokenizerBase, overrides: dict[str, Any] | None = None,
                      seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised tiny Llama sized for ``tokenizer``, deterministic in ``seed``.

    The vocabulary size and the bos/eos/pad ids come from the tokenizer. The
    global torch RNG is left as it was.
    """
    overrides = dict(overrides or {})
    overrides.setdefault("bos_token_id", tokenizer.bos_token_id)
    overrides.setdefault("eos_token_id", tokenizer.eos_token_id)
    overrides.setdefault("pad_token_id", tokenizer.pad_token_id)
    overrides.setdefault("vocab_size", len(tokenizer))
    if overrides["vocab_size"] < len(tokenizer):
        raise ConfigError(f"model.tiny: vocab_size {overrides['vocab_size']} is smaller than "
                          f"the tokenizer's {len(tokenizer)} tokens")
    config = tiny_llama_config(**overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    # Generation defaults: stop at the tokenizer's eos, pad with its pad id.
    model.generation_config.bos_token_id = config.bos_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    return model


def builtin_corpus() -> list[str]:
    """A few hundred short chat lines written in code, always the same, for tiny tokenizers."""
    names = ["Ada", "Bo", "Chen", "Dana", "Eli", "Fatima", "Goran", "Hana"]
    capitals = [("France", "Paris"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"),
                ("Peru", "Lima"), ("Canada", "Ottawa"), ("Egypt", "Cairo"),
                ("Norway", "Oslo"), ("India", "New Delhi")]
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    lines: list[str] = []
    for name in names:
        lines += [f"Hello, {name}! How are you today?",
                  f"I am fine, thank you. How can I help you, {name}?",
                  f"{name} asked a question and I answered it politely."]
    for country, city in capitals:
        lines += [f"What is the capital of {country}?",
                  f"The capital of {country} is {city}.",
                  f"I think the capital of {country} is not {city}. Am I right?",
                  f"No, the capital of {country} is {city}."]
    for a in range(10):
        for b in range(0, 10, 3):
            lines += [f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.",
                      f"What is {a} times {b}? The answer is {a * b}.",
                      f"{words[a]} and {words[b]} make {a + b}."]
    lines += ["Sorry, I cannot help with that request because it could hurt someone.",
              "Here is a short, clear answer to your question.",
              "Please explain the steps one by one.",
              "Sure! First, read the question. Second, think. Third, answer.",
              "Bonjour, comment allez-vous ?", "Hola, ¿cómo estás?", "Danke schön!",
              "Write a haiku about the sea.", "The sea is calm tonight, the moon is bright.",
              "Is the earth flat? No, the earth is round.",
              "I am not sure; I do not know the answer to that."]
    return lines


def tiny_model_and_tokenizer(texts: list[str] | None = None, seed: int = 0,
                             vocab_size: int = 512, **overrides: Any
                             ) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """Train a tokenizer on ``texts`` (default: :func:`builtin_corpus`) and create a tiny Llama for it.

    ``overrides`` are tiny Llama config fields (``hidden_size=32``, ...).
    """
    tokenizer = train_tokenizer(builtin_corpus() if texts is None else texts,
                                vocab_size=vocab_size)
    return create_tiny_model(tokenizer, overrides, seed=seed), tokenizer
