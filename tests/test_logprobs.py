"""Per-token log-probs agree with a direct, one-sequence, one-token-at-a-time computation."""

from __future__ import annotations

import math

import pytest
import torch

from tether.models.factory import tiny_model_and_tokenizer
from tether.models.logprobs import (
    position_ids_from_mask,
    response_logprobs,
    sequence_token_logprobs,
    token_entropy,
    token_logprobs,
)

torch.set_num_threads(1)
ATOL = 1e-5
LENGTHS = (6, 11, 2, 8)


@pytest.fixture(scope="module")
def model():
    m, _ = tiny_model_and_tokenizer(seed=0)
    return m.eval()


@pytest.fixture(scope="module")
def gpt2():
    """A tiny GPT-2: learned absolute positions, so wrong position ids under left padding show."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def seqs(model):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, model.config.vocab_size, (n,), generator=g) for n in LENGTHS]


def pad(seqs: list[torch.Tensor], left: bool, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        cols = slice(T - len(s), T) if left else slice(0, len(s))
        ids[i, cols], mask[i, cols] = s, 1
    return ids, mask


def direct_logprobs(model, seq: torch.Tensor, temperature: float = 1.0) -> list[float]:
    """log p(seq[t] | seq[:t]) by feeding each prefix alone, no padding, no batching."""
    out = [0.0]
    for t in range(1, len(seq)):
        logits = model(seq[None, :t]).logits[0, -1] / temperature  # [V]
        out.append(torch.log_softmax(logits.double(), -1)[seq[t]].item())
    return out


@pytest.mark.parametrize("left", [False, True], ids=["right-padded", "left-padded"])
def test_sequence_logprobs_match_direct(model, seqs, left):
    ids, mask = pad(seqs, left)
    with torch.no_grad():
        lp = sequence_token_logprobs(model, ids, mask)  # [B, T]
        assert lp.shape == ids.shape
        for i, s in enumerate(seqs):
            real = mask[i].bool()
            expected = torch.tensor(direct_logprobs(model, s), dtype=lp.dtype)
            torch.testing.assert_close(lp[i, real], expected, atol=ATOL, rtol=0)
            assert torch.all(lp[i, ~real] == 0)  # padding is exactly 0


def test_left_padding_with_absolute_positions(gpt2):
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(0, 64, (n,), generator=g) for n in LENGTHS]
    ids, mask = pad(seqs, left=True)
    with torch.no_grad():
        lp = sequence_token_logprobs(gpt2, ids, mask)
        r_lp = response_logprobs(gpt2, ids[:, :-2], mask[:, :-2], ids[:, -2:], mask[:, -2:])
        for i, s in enumerate(seqs):
            expected = torch.tensor(direct_logprobs(gpt2, s), dtype=lp.dtype)
            torch.testing.assert_close(lp[i, -len(s):], expected, atol=ATOL, rtol=0)
            torch.testing.assert_close(r_lp[i], expected[-2:], atol=ATOL, rtol=0)


def test_left_and_right_padding_agree_with_temperature_and_entropy(model, seqs):
    with torch.no_grad():
        lp_r, ent_r = sequence_token_logprobs(model, *pad(seqs, False), temperature=0.7,
                                              return_entropy=True)
        lp_l, ent_l = sequence_token_logprobs(model, *pad(seqs, True), temperature=0.7,
                                              return_entropy=True)
        for i, s in enumerate(seqs):
            n = len(s)
            torch.testing.assert_close(lp_r[i, :n], lp_l[i, -n:], atol=ATOL, rtol=0)
            torch.testing.assert_close(ent_r[i, :n], ent_l[i, -n:], atol=ATOL, rtol=0)
            expected = torch.tensor(direct_logprobs(model, s, temperature=0.7))
            torch.testing.assert_close(lp_l[i, -n:], expected.float(), atol=ATOL, rtol=0)
            # Entropy at position t is that of the distribution predicting token t.
            p = torch.softmax(model(s[None, :1]).logits[0, -1].double() / 0.7, -1)
            assert ent_r[i, 1].item() == pytest.approx(-(p * p.log()).sum().item(), abs=ATOL)
        assert ent_r[:, 0].eq(0).all() and (ent_r[:, 1] > 0).all()


def test_response_logprobs_match_direct(model, seqs):
    # Prompts of different lengths, left-padded; responses right-padded.
    prompts, responses = [s[:3] for s in seqs if len(s) > 3], [s[3:] for s in seqs if len(s) > 3]
    prompts.append(seqs[2][:1])
    responses.append(seqs[2][1:])
    p_ids, p_mask = pad(prompts, left=True)
    r_ids, r_mask = pad(responses, left=False)
    with torch.no_grad():
        lp = response_logprobs(model, p_ids, p_mask, r_ids, r_mask)  # [B, R]
        assert lp.shape == r_ids.shape
        for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
            full = direct_logprobs(model, torch.cat([p, r]))
            expected = torch.tensor(full[len(p):], dtype=lp.dtype)
            torch.testing.assert_close(lp[i, :len(r)], expected, atol=ATOL, rtol=0)
            assert torch.all(lp[i, len(r):] == 0)
        # The same numbers as the full-sequence function sliced to the response.
        full_lp = sequence_token_logprobs(model, torch.cat([p_ids, r_ids], 1),
                                          torch.cat([p_mask, r_mask], 1))
        torch.testing.assert_close(lp, full_lp[:, p_ids.shape[1]:], atol=ATOL, rtol=0)


def test_logprobs_keep_gradients(model, seqs):
    ids, mask = pad(seqs, left=True)
    lp = sequence_token_logprobs(model, ids, mask)
    lp.sum().backward()
    grad = model.model.embed_tokens.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_token_logprobs_arithmetic():
    # Two tokens with logits (0, ln 3): probabilities 1/4 and 3/4.
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])  # [1, 2, 2]
    labels = torch.tensor([[1, 0]])
    expected = torch.tensor([[math.log(0.75), math.log(0.5)]])
    torch.testing.assert_close(token_logprobs(logits, labels), expected)
    # bf16 logits are upcast per row: same answer to bf16 input precision.
    torch.testing.assert_close(token_logprobs(logits.bfloat16(), labels), expected, atol=1e-2,
                               rtol=0)
    # Temperature 2 halves the logits: p = 1/(1+sqrt 3), sqrt 3/(1+sqrt 3).
    s3 = math.sqrt(3.0)
    torch.testing.assert_close(token_logprobs(logits, labels, temperature=2.0),
                               torch.tensor([[math.log(s3 / (1 + s3)), math.log(0.5)]]))
    # Entropy of (1/4, 3/4) and of a fair coin.
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.testing.assert_close(token_entropy(logits), torch.tensor([[h, math.log(2.0)]]))


def test_position_ids_from_mask():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 2, 2]]


def test_bad_temperature_and_short_inputs(model):
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="temperature"):
        sequence_token_logprobs(model, ids, torch.ones_like(ids), temperature=0.0)
    one = torch.tensor([[5]])
    assert sequence_token_logprobs(model, one, torch.ones_like(one)).tolist() == [[0.0]]
    # No prompt columns: the response is the whole sequence.
    with torch.no_grad():
        lp = response_logprobs(model, ids[:, :0], ids[:, :0], ids, torch.ones_like(ids))
        torch.testing.assert_close(lp, sequence_token_logprobs(model, ids, torch.ones_like(ids)))
