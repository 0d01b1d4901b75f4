"""Models the app talks to: a policy directory served for red-teaming, and sampling.

Imported lazily (only red-team chats and ``--policy`` imports need torch); the
app never imports a training stage, only :mod:`tether.models`.
"""

from __future__ import annotations

import threading
from typing import Any

from tether.errors import TetherError

Messages = list[dict[str, str]]


class PolicyChat:
    """A policy directory answering chat messages; loaded on first use, one call at a time.

    A tokenizer with a chat template gets the conversation as messages; without
    one, the turns are written as ``User: ...`` / ``Assistant: ...`` lines.
    """

    def __init__(self, path: str, max_new_tokens: int = 64, temperature: float = 0.7,
                 top_p: float = 0.95) -> None:
        self.path, self.max_new_tokens = path, max_new_tokens
        self.temperature, self.top_p = temperature, top_p
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()  # one generate() at a time: the model is not thread-safe

    def _load(self) -> None:
        if self._model is None:
            from tether.models.load import load_causal_lm, load_tokenizer

            self._tokenizer = load_tokenizer(self.path)
            self._model = load_causal_lm(self.path)

    def __call__(self, messages: Messages) -> str:
        """The policy's next assistant message after ``messages``."""
        from tether.models.generation import sample

        with self._lock:
            self._load()
            chat = self._tokenizer.chat_template is not None
            prompt: Any = messages if chat else _plain(messages)
            gen = sample(self._model, self._tokenizer, [prompt], self.max_new_tokens,
                         temperature=self.temperature, top_p=self.top_p, chat=chat)
        return gen.responses[0].strip() or "(empty reply)"


def _plain(messages: Messages) -> str:
    lines = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}"
             for m in messages]
    return "\n".join(lines) + "\nAssistant:"


class Responders:
    """One :class:`PolicyChat` per policy directory, created on first use."""

    def __init__(self) -> None:
        self._chats: dict[str, PolicyChat] = {}
        self._lock = threading.Lock()

    def __call__(self, policy: str | None, messages: Messages) -> str:
        if not policy:
            raise TetherError("this red-team campaign has no policy to chat with")
        with self._lock:
            chat = self._chats.setdefault(policy, PolicyChat(policy))
        return chat(messages)


def sample_responses(policy: str, prompts: list[str], n: int, max_new_tokens: int = 64,
                     temperature: float = 1.0, top_p: float = 1.0, seed: int = 0
                     ) -> list[list[str]]:
    """``n`` sampled responses per prompt from a policy directory (for campaign imports)."""
    from tether.models.generation import sample
    from tether.models.load import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(policy)
    model = load_causal_lm(policy)
    chat = tokenizer.chat_template is not None
    out: list[list[str]] = [[] for _ in prompts]
    for k in range(n):
        gen = sample(model, tokenizer, list(prompts), max_new_tokens, temperature=temperature,
                     top_p=top_p, chat=chat, generator_seed=seed + k)
        for i, r in enumerate(gen.responses):
            out[i].append(r.strip())
    return out
