"""Tokenizer, tiny-model factory, load/save, LoRA and reward/value heads."""

from __future__ import annotations

import pytest
import torch

from tether.errors import ConfigError, DataError
from tether.models.factory import (
    builtin_corpus,
    create_tiny_model,
    tiny_llama_config,
    tiny_model_and_tokenizer,
)
from tether.models.tokenizer import CHAT_TEMPLATE, train_tokenizer

torch.set_num_threads(1)

CHAT = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 plus 3?"},
        {"role": "assistant", "content": "2 plus 3 is 5."}]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model_and_tokenizer(seed=0)


def test_tokenizer_special_tokens_and_bos(tiny):
    _, tok = tiny
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.chat_template == CHAT_TEMPLATE
    ids = tok("What is 2 plus 3?")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "What is 2 plus 3?"


def test_chat_template_renders_and_round_trips(tiny):
    _, tok = tiny
    text = tok.apply_chat_template(CHAT, tokenize=False)
    assert text == ("<|bos|><|system|>\nBe brief.<|eos|><|user|>\nWhat is 2 plus 3?<|eos|>"
                    "<|assistant|>\n2 plus 3 is 5.<|eos|>")
    prompt = tok.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|user|>\nWhat is 2 plus 3?<|eos|><|assistant|>\n")
    enc = tok.apply_chat_template(CHAT, return_assistant_tokens_mask=True)
    ids, amask = enc["input_ids"], enc["assistant_masks"]
    assert ids.count(tok.bos_token_id) == 1  # the template's bos is not doubled
    # The assistant mask covers exactly the answer and its closing eos.
    answer = [i for i, m in zip(ids, amask, strict=True) if m]
    assert answer[-1] == tok.eos_token_id
    assert tok.decode(answer, skip_special_tokens=True) == "2 plus 3 is 5."
    assert tok.decode(ids, skip_special_tokens=True) == "\nBe brief.\nWhat is 2 plus 3?\n2 plus 3 is 5."


def test_chat_template_rejects_unknown_role(tiny):
    _, tok = tiny
    with pytest.raises(Exception, match="unknown chat role: tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_train_tokenizer_is_deterministic_and_checks_input():
    a = train_tokenizer(builtin_corpus(), vocab_size=400)
    b = train_tokenizer(iter(builtin_corpus()), vocab_size=400)
    assert a.get_vocab() == b.get_vocab() and len(a) <= 400
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(["abc"], vocab_size=100)
    with pytest.raises(DataError, match="no non-empty texts"):
        train_tokenizer(["", ""], vocab_size=300)
    with pytest.raises(DataError, match=":2: expected a string"):
        train_tokenizer(["ok", 3], vocab_size=300)


def test_factory_sizes_and_seed(tiny):
    model, tok = tiny
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
            cfg.num_key_value_heads, cfg.intermediate_size) == (64, 2, 4, 2, 172)
    assert cfg.vocab_size == len(tok) and cfg.tie_word_embeddings
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (1, 2, 0)
    same = create_tiny_model(tok, seed=0)
    other = create_tiny_model(tok, seed=1)
    w = model.model.embed_tokens.weight
    assert torch.equal(w, same.model.embed_tokens.weight)
    assert not torch.equal(w, other.model.embed_tokens.weight)
    bigger = create_tiny_model(tok, {"num_hidden_layers": 3, "hidden_size": 32}, seed=0)
    assert bigger.config.num_hidden_layers == 3 and bigger.config.hidden_size == 32


def test_factory_rejects_bad_overrides(tiny):
    _, tok = tiny
    with pytest.raises(ConfigError, match="unknown Llama config key 'hiden_size'"):
        tiny_llama_config(100, hiden_size=32)
    with pytest.raises(ConfigError, match="num_attention_heads"):
        tiny_llama_config(100, hidden_size=30)
    with pytest.raises(ConfigError, match="smaller than the tokenizer"):
        create_tiny_model(tok, {"vocab_size": 10})


def test_tiny_model_and_tokenizer_is_fast_and_deterministic():
    import time

    start = time.perf_counter()
    m1, t1 = tiny_model_and_tokenizer(seed=3)
    elapsed = time.perf_counter() - start
    m2, t2 = tiny_model_and_tokenizer(seed=3)
    assert elapsed < 2.0
    assert t1.get_vocab() == t2.get_vocab()
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)
