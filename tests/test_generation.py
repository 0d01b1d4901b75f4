"""Batched sampling: padding layout, EOS handling, determinism, and agreement with log-probs."""

from __future__ import annotations

import pytest
import torch

from tether.errors import TetherError
from tether.models.factory import tiny_model_and_tokenizer
from tether.models.generation import _cut_at_eos, format_prompt, sample
from tether.models.logprobs import response_logprobs

torch.set_num_threads(1)
PROMPTS = ["What is 2 plus 3?",
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
           "Hello, Ada! How are you today?"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model_and_tokenizer(seed=0)


def test_format_prompt(tiny):
    _, tok = tiny
    assert format_prompt(tok, "Hi") == "<|bos|><|user|>\nHi<|eos|><|assistant|>\n"
    assert format_prompt(tok, "Hi", chat=False) == "Hi"
    with pytest.raises(TetherError, match="empty text"):
        format_prompt(tok, "  ")
    with pytest.raises(TetherError, match="message 0 needs string 'role' and 'content'"):
        format_prompt(tok, [{"role": "user"}])
    with pytest.raises(TetherError, match="needs chat=True"):
        format_prompt(tok, [{"role": "user", "content": "x"}], chat=False)


def test_sample_layout_and_mode(tiny):
    model, tok = tiny
    model.train()
    gen = sample(model, tok, PROMPTS, max_new_tokens=8, generator_seed=0)
    assert model.training  # put back in train mode
    B, P = gen.prompt_ids.shape
    assert B == 3 and gen.response_ids.shape == (3, 8) and gen.finished.shape == (3,)
    # Left padding: every prompt ends in the last column with the opened assistant turn.
    assert gen.prompt_mask[:, -1].all()
    assert gen.prompt_ids[:, -2].eq(tok.convert_tokens_to_ids("<|assistant|>")).all()
    for i in range(B):
        n = int(gen.prompt_mask[i].sum())
        assert gen.prompt_mask[i, : P - n].eq(0).all()
        assert gen.prompt_ids[i, : P - n].eq(tok.pad_token_id).all()
        assert tok.decode(gen.prompt_ids[i, P - n:]) == gen.prompts[i]
    assert gen.prompts[1].startswith("<|bos|><|system|>\nBe brief.")
    assert gen.inputs == PROMPTS
    assert all(isinstance(r, str) for r in gen.responses)
    assert gen.sequence_ids.shape == (3, P + 8) and gen.sequence_mask.shape == (3, P + 8)


def test_sample_is_deterministic_under_seed_and_restores_rng(tiny):
    model, tok = tiny
    state = torch.random.get_rng_state()
    a = sample(model, tok, PROMPTS, max_new_tokens=6, generator_seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = sample(model, tok, PROMPTS, max_new_tokens=6, generator_seed=1, batch_size=3)
    c = sample(model, tok, PROMPTS, max_new_tokens=6, generator_seed=2)
    assert torch.equal(a.response_ids, b.response_ids) and a.responses == b.responses
    assert not torch.equal(a.response_ids, c.response_ids)


def test_greedy_batched_equals_one_at_a_time(tiny):
    model, tok = tiny
    batched = sample(model, tok, PROMPTS, max_new_tokens=6, do_sample=False, batch_size=2)
    for i, p in enumerate(PROMPTS):
        alone = sample(model, tok, [p], max_new_tokens=6, do_sample=False)
        n = int(alone.response_mask.sum())
        assert torch.equal(batched.response_ids[i, :n], alone.response_ids[0, :n])
        assert batched.responses[i] == alone.responses[0]


def test_eos_ends_response_and_pads_after(tiny):
    model, tok = tiny
    first = sample(model, tok, PROMPTS, max_new_tokens=6, do_sample=False)
    stop = int(first.response_ids[0, 2])  # make row 0's third greedy token an end-of-turn id
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    try:
        gen = sample(model, tok, PROMPTS, max_new_tokens=6, do_sample=False)
    finally:
        model.generation_config.eos_token_id = old
    ends = (first.response_ids[0] == stop).nonzero()[0, 0].item()  # first occurrence
    assert gen.finished[0]
    assert gen.response_mask[0].tolist() == [1] * (ends + 1) + [0] * (gen.response_ids.shape[1] - ends - 1)
    assert gen.response_ids[0, ends] == stop
    assert gen.response_ids[0, ends + 1:].eq(tok.pad_token_id).all()


def test_cut_at_eos_arithmetic():
    eos = torch.tensor([2])
    resp = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 9, 9, 9]])
    ids, mask, finished = _cut_at_eos(resp, eos, pad_id=0)
    assert ids.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert finished.tolist() == [True, False, True]


def test_sampled_tokens_score_with_response_logprobs(tiny):
    """Generation and scoring see the same distribution: generate's own scores agree."""
    model, tok = tiny
    gen = sample(model, tok, PROMPTS, max_new_tokens=5, do_sample=False)
    with torch.no_grad():
        lp = response_logprobs(model.eval(), gen.prompt_ids, gen.prompt_mask, gen.response_ids,
                               gen.response_mask)
    assert lp.shape == gen.response_ids.shape
    assert torch.isfinite(lp).all() and (lp[gen.response_mask.bool()] < 0).all()
    # Greedy: every chosen token is the argmax, so its log-prob is the row's largest.
    seq, mask = gen.sequence_ids, gen.sequence_mask
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=seq, attention_mask=mask, position_ids=pos).logits
    P = gen.prompt_ids.shape[1]
    best = torch.log_softmax(logits[:, P - 1:-1], -1).max(-1).values  # [B, R]
    torch.testing.assert_close(lp[gen.response_mask.bool()], best[gen.response_mask.bool()],
                               atol=1e-5, rtol=0)


def test_sample_rejects_bad_input(tiny):
    model, tok = tiny
    with pytest.raises(TetherError, match=r"prompts\[1\]: prompt: empty text"):
        sample(model, tok, ["ok", ""], max_new_tokens=2)
    with pytest.raises(ValueError, match="temperature"):
        sample(model, tok, ["ok"], temperature=0.0)
    with pytest.raises(ValueError, match="no prompts"):
        sample(model, tok, [])


def test_top_p_and_temperature_narrow_to_greedy(tiny):
    model, tok = tiny
    greedy = sample(model, tok, PROMPTS, max_new_tokens=5, do_sample=False)
    nucleus = sample(model, tok, PROMPTS, max_new_tokens=5, top_p=1e-6, generator_seed=3)
    cold = sample(model, tok, PROMPTS, max_new_tokens=5, temperature=1e-4, generator_seed=3)
    hot = sample(model, tok, PROMPTS, max_new_tokens=5, temperature=1.0, generator_seed=3)
    assert torch.equal(nucleus.response_ids, greedy.response_ids)
    assert torch.equal(cold.response_ids, greedy.response_ids)
    assert not torch.equal(hot.response_ids, greedy.response_ids)
