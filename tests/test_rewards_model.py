"""ModelReward: a saved reward model scores text batches, independent of padding and batching."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tether.config import build_config
from tether.rewards import EnsembleReward, ModelReward, RewardConfig, load_reward_source
from tether.rewards.model import encode

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tether.models.factory import tiny_model_and_tokenizer
    from tether.models.heads import reward_model_from_causal_lm
    from tether.models.load import save_model

    lm, tok = tiny_model_and_tokenizer(seed=0, hidden_size=32, num_hidden_layers=1)
    out = tmp_path_factory.mktemp("rm") / "model"
    save_model(reward_model_from_causal_lm(lm, seed=1), tok, out)
    return out


PROMPTS = ["What is 2 plus 2?", [{"role": "user", "content": "Say hi."}], "Name a colour."]
RESPONSES = ["4.", "Hi! Hello there, nice to meet you today, my friend.", "Blue."]


def test_model_reward_scores_match_single_forwards(rm_dir: Path) -> None:
    rm = ModelReward.load(rm_dir, batch_size=2)
    batch = rm.score(PROMPTS, RESPONSES)  # [3], padded batches of 2 + 1
    assert batch.shape == (3,) and batch.dtype == torch.float32
    alone = torch.cat([rm.score([p], [r]) for p, r in zip(PROMPTS, RESPONSES, strict=True)])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=0)
    assert len(set(batch.tolist())) == 3
    assert not rm.model.training


def test_encode_chat_template_keeps_response_end(rm_dir: Path) -> None:
    from tether.models.load import load_tokenizer

    tok = load_tokenizer(rm_dir)
    enc = encode(tok, ["a long prompt " * 50], ["short answer"], max_length=16)
    assert enc["input_ids"].shape == (1, 16)
    assert enc["input_ids"][0, -1].item() == tok.eos_token_id  # the assistant turn's eos
    assert "short answer" in tok.decode(enc["input_ids"][0])


def test_minilm_encoder_scores_text_pairs() -> None:
    from tether.models.load import load_reward_model, load_tokenizer, minilm_path

    path = minilm_path()
    rm = ModelReward(load_reward_model(path), load_tokenizer(path), name="minilm")
    enc = encode(rm.tokenizer, ["q"], ["a"])
    # cross-encoder layout: [CLS] prompt [SEP] response [SEP]
    assert enc["input_ids"][0].tolist()[0] == rm.tokenizer.cls_token_id
    assert enc["input_ids"][0].tolist().count(rm.tokenizer.sep_token_id) == 2
    scores = rm.score(PROMPTS, RESPONSES)
    alone = torch.cat([rm.score([p], [r]) for p, r in zip(PROMPTS, RESPONSES, strict=True)])
    torch.testing.assert_close(scores, alone, atol=1e-5, rtol=0)


def test_load_reward_source_model_and_ensemble_dir(rm_dir: Path, tmp_path: Path) -> None:
    import json

    src = load_reward_source(build_config(RewardConfig, {"path": str(rm_dir)}))
    assert isinstance(src, ModelReward)
    ens_dir = tmp_path / "ens"
    ens_dir.mkdir()
    for i in range(2):
        (ens_dir / f"member-{i}").symlink_to(rm_dir, target_is_directory=True)
    (ens_dir / "ensemble.json").write_text(json.dumps(
        {"members": ["member-0", "member-1"], "rule": "min", "k": 1.0}))
    ens = load_reward_source(build_config(RewardConfig, {"path": str(ens_dir)}))
    assert isinstance(ens, EnsembleReward) and ens.rule == "min" and len(ens.members) == 2
    # identical members: every rule gives the member's score, and no disagreement
    single = src.score(PROMPTS, RESPONSES)
    torch.testing.assert_close(ens.score(PROMPTS, RESPONSES), single)
    assert ens.disagreement(PROMPTS, RESPONSES).abs().max() < 1e-6
    override = load_reward_source(build_config(RewardConfig, {"path": str(ens_dir),
                                                              "rule": "mean_minus_std"}))
    assert override.rule == "mean_minus_std"


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prompt_rows_equal_separate_sequences(attn: str) -> None:
    from tether.models.factory import tiny_model_and_tokenizer
    from tether.models.heads import reward_model_from_causal_lm
    from tether.rewards.model import (
        pad_right,
        reward_forward,
        score_head,
        shared_prefix_len,
        shared_prompt_batch,
        shared_prompt_rewards,
        tokenize,
    )

    lm, tok = tiny_model_and_tokenizer(seed=0, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, num_key_value_heads=1,
                                       intermediate_size=64)
    rm = reward_model_from_causal_lm(lm, seed=1)
    rm.set_attn_implementation(attn)
    assert score_head(rm) is rm.score
    prompts = ["What is 2 plus 2?", "Say hello in French please.",
               [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
               "a long prompt " * 30]
    chosen = ["4.", "Bonjour!", "Hello.", "ok"]
    rejected = ["It is 5, definitely, no doubt about it at all.", "Hello!", "Hello. How are you?",
                "fine, thanks"]
    c = tokenize(tok, prompts, chosen, max_length=40)  # the last pair is cut from the left
    r = tokenize(tok, prompts, rejected, max_length=40)
    assert shared_prefix_len([1, 2, 3], [1, 2, 3, 4]) == 2  # one token left in each
    dtype = torch.float32 if attn == "eager" else None
    batch = shared_prompt_batch(c, r, tok.pad_token_id, dtype)
    # short pairs share a row no longer than the longest pair
    assert batch["input_ids"].shape[0] < 4
    assert batch["input_ids"].shape[1] == max(len(x) + len(y) - shared_prefix_len(x, y)
                                              for x, y in zip(c, r, strict=True))
    assert int(batch["n_tokens"]) < sum(map(len, c + r))  # the prompts are read once
    sc, sr = shared_prompt_rewards(rm, batch)
    ref = reward_forward(rm, **pad_right(c + r, tok.pad_token_id))  # [8]
    torch.testing.assert_close(torch.cat([sc, sr]), ref, atol=1e-5, rtol=0)
    # and the gradients agree too (the loss sees the same function)
    (sc - sr).sum().backward()
    g_shared = rm.score.weight.grad.clone()
    rm.zero_grad()
    ref = reward_forward(rm, **pad_right(c + r, tok.pad_token_id))
    (ref[:4] - ref[4:]).sum().backward()
    torch.testing.assert_close(g_shared, rm.score.weight.grad, atol=1e-5, rtol=1e-4)


def test_shared_prompt_not_for_encoders() -> None:
    from tether.models.load import load_reward_model, minilm_path
    from tether.rewards.model import score_head

    assert score_head(load_reward_model(minilm_path())) is None
