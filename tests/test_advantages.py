"""Advantage estimators: GAE against a plain loop in float64, the rest against hand numbers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.advantages import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    group_normalize,
    kl_shaped_rewards,
    rloo,
    whiten,
)

torch.set_num_threads(1)


def _gae_loop(rewards: list[float], values: list[float], mask: list[int], gamma: float,
              lam: float) -> tuple[list[float], list[float]]:
    """GAE for one row in plain Python: walk the unmasked positions backwards."""
    adv = [0.0] * len(rewards)
    ret = [0.0] * len(rewards)
    next_value, next_adv = 0.0, 0.0
    for t in reversed(range(len(rewards))):
        if not mask[t]:
            continue
        delta = rewards[t] + gamma * next_value - values[t]
        adv[t] = delta + gamma * lam * next_adv
        ret[t] = adv[t] + values[t]
        next_value, next_adv = values[t], adv[t]
    return adv, ret


def _padded_batch(seed: int, b: int = 6, t: int = 9) -> tuple[torch.Tensor, ...]:
    """Random float64 rewards/values with left padding, right padding, and both."""
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(b, t, generator=g, dtype=torch.float64)
    values = torch.randn(b, t, generator=g, dtype=torch.float64)
    mask = torch.zeros(b, t, dtype=torch.long)
    for i in range(b):
        start = int(torch.randint(0, t // 2, (1,), generator=g))
        end = int(torch.randint(start + 1, t + 1, (1,), generator=g))
        mask[i, start:end] = 1
    mask[0] = 1  # one full row
    mask[1, :] = 0
    mask[1, 3:] = 1  # left padding only
    return rewards, values, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (0.5, 0.0)])
def test_gae_matches_python_loop_in_float64(seed: int, gamma: float, lam: float) -> None:
    rewards, values, mask = _padded_batch(seed)
    # padding holds garbage: it must not leak into valid positions
    rewards = rewards.masked_fill(mask == 0, float("nan"))
    copies = (rewards.clone(), values.clone(), mask.clone())
    adv, ret = gae(rewards, values, mask, gamma=gamma, lam=lam)
    assert adv.dtype == ret.dtype == torch.float64
    for i in range(rewards.shape[0]):
        exp_adv, exp_ret = _gae_loop(rewards[i].tolist(), values[i].tolist(),
                                     mask[i].tolist(), gamma, lam)
        assert adv[i].tolist() == pytest.approx(exp_adv, rel=1e-12, abs=1e-12)
        assert ret[i].tolist() == pytest.approx(exp_ret, rel=1e-12, abs=1e-12)
    assert (adv[mask == 0] == 0).all() and (ret[mask == 0] == 0).all()
    # inputs are untouched
    for before, after in zip(copies, (rewards, values, mask), strict=True):
        assert torch.equal(before.nan_to_num(7.0), after.nan_to_num(7.0))


def test_gae_gamma_lam_one_is_reward_to_go_minus_value() -> None:
    rewards, values, mask = _padded_batch(5)
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # gamma = lam = 1: A_t = sum of rewards from t to the end - V_t (the values telescope)
    masked_r = rewards * mask
    reward_to_go = masked_r.flip(-1).cumsum(-1).flip(-1) * mask
    assert torch.allclose(ret, reward_to_go, atol=1e-12)
    assert torch.allclose(adv, (reward_to_go - values) * mask, atol=1e-12)


def test_gae_hand_numbers() -> None:
    # rewards 0, 0, 1; values 0.5 each; gamma 1, lam 0.95; one right-pad token
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # t=2: delta = 1 + 0 (bootstrap 0) - 0.5 = 0.5, A = 0.5
    # t=1: delta = 0 + 0.5 - 0.5 = 0, A = 0.95 * 0.5 = 0.475
    # t=0: delta = 0, A = 0.95 * 0.475 = 0.45125; padding: 0
    assert adv[0].tolist() == pytest.approx([0.45125, 0.475, 0.5, 0.0])
    assert ret[0].tolist() == pytest.approx([0.95125, 0.975, 1.0, 0.0])


def test_gae_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same"):
        gae(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3))


def test_whiten_mean_zero_std_one_on_unmasked_and_ignores_masked() -> None:
    _, x, mask = _padded_batch(3)
    before = x.clone()
    w = whiten(x, mask)
    valid = w[mask.bool()]
    assert float(valid.mean()) == pytest.approx(0.0, abs=1e-12)
    assert float(valid.std(unbiased=False)) == pytest.approx(1.0, rel=1e-6)
    assert (w[mask == 0] == 0).all()
    assert torch.equal(x, before)
    # changing masked entries changes nothing
    assert torch.equal(whiten(x.masked_fill(mask == 0, 1e6), mask), w)
    # shift_mean=False: same scale, mean kept
    w2 = whiten(x, mask, shift_mean=False)
    mean = float(x[mask.bool()].mean())
    assert float(w2[mask.bool()].mean()) == pytest.approx(mean, abs=1e-12)
    assert float(w2[mask.bool()].std(unbiased=False)) == pytest.approx(1.0, rel=1e-6)


def test_whiten_hand_numbers_and_empty_mask() -> None:
    # 1, 3 unmasked: mean 2, population std 1 -> -1, 1; the masked 100 -> 0
    w = whiten(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]]))
    assert w[0].tolist() == pytest.approx([-1.0, 1.0, 0.0], rel=1e-6)
    with pytest.raises(ValueError, match="at least 1 unmasked"):
        whiten(torch.ones(2, 2), torch.zeros(2, 2))


def test_kl_shaped_rewards_hand_numbers() -> None:
    scores = torch.tensor([1.0, 2.0, 3.0])
    logprobs = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-2.0, -1.0, -1.5], [-2.0, -0.5, -9.0], [-9.0, -2.0, -1.0]])
    # row 1 full, row 2 right-padded, row 3 left-padded
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 1, 1]])
    before = logprobs.clone()
    rewards, kl = kl_shaped_rewards(scores, logprobs, ref, mask, kl_coef=0.1)
    # k1 = logp - ref: row 1: 1, 0, 0.5; row 2: 1, -0.5, (pad) 0; row 3: (pad) 0, 1, 0
    assert kl.tolist() == [[1.0, 0.0, 0.5], [1.0, -0.5, 0.0], [0.0, 1.0, 0.0]]
    # rewards -0.1 * kl, plus the score on the last valid token
    expected = [[-0.1, 0.0, -0.05 + 1.0], [-0.1, 0.05 + 2.0, 0.0], [0.0, -0.1, 3.0]]
    for got, exp in zip(rewards.tolist(), expected, strict=True):
        assert got == pytest.approx(exp)
    assert torch.equal(logprobs, before)
    # k3 estimator: row 1 token 1 has r = q/p = e^-1 -> (e^-1 - 1) + 1 = 0.367879
    _, kl3 = kl_shaped_rewards(scores, logprobs, ref, mask, kl_coef=0.1, estimator="k3")
    assert float(kl3[0, 0]) == pytest.approx(0.367879, rel=1e-5)
    assert (kl3 >= 0).all()


def test_kl_shaped_rewards_rejects_bad_input() -> None:
    lp = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="row 1 has no response token"):
        kl_shaped_rewards(torch.zeros(2), lp, lp, torch.tensor([[1, 0, 0], [0, 0, 0]]), 0.1)
    with pytest.raises(ValueError, match=r"scores must be \[B\] = \[2\]"):
        kl_shaped_rewards(torch.zeros(3), lp, lp, torch.ones(2, 3), 0.1)
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_shaped_rewards(torch.zeros(2), lp, lp, torch.ones(2, 3), 0.1, estimator="kl")


def test_group_normalize_hand_numbers() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    before = rewards.clone()
    # group 1: mean 2, sample std 1 -> -1, 0, 1 (divided by 1 + 1e-6);
    # group 2: all equal -> 0, 0, 0 (eps keeps it finite)
    adv = group_normalize(rewards, group_size=3)
    assert adv.tolist() == pytest.approx([-1 / (1 + 1e-6), 0.0, 1 / (1 + 1e-6), 0.0, 0.0, 0.0])
    # Dr.GRPO: mean only. Group 1: -1, 0, 1; with rewards 0, 4 -> -2, 2 (no scaling)
    assert group_normalize(rewards, 3, scale=False).tolist() == pytest.approx(
        [-1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    assert group_normalize(torch.tensor([0.0, 4.0]), 2, scale=False).tolist() == [-2.0, 2.0]
    assert torch.equal(rewards, before)


def test_rloo_hand_numbers() -> None:
    # 1, 2, 3: the others' means are 2.5, 2, 1.5 -> -1.5, 0, 1.5 (= 3/2 * (r - 2))
    # 0, 4: others 4, 0 -> -4, 4
    assert rloo(torch.tensor([1.0, 2.0, 3.0]), 3).tolist() == pytest.approx([-1.5, 0.0, 1.5])
    assert rloo(torch.tensor([0.0, 4.0, 1.0, 1.0]), 2).tolist() == [-4.0, 4.0, 0.0, 0.0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=8, max_size=8), st.sampled_from([2, 4, 8]))
def test_rloo_is_scaled_mean_baseline_and_sums_to_zero(values: list[float], k: int) -> None:
    r = torch.tensor(values, dtype=torch.float64)
    adv = rloo(r, k)
    mean_only = group_normalize(r, k, scale=False)
    assert torch.allclose(adv, k / (k - 1) * mean_only, atol=1e-9)
    assert torch.allclose(adv.view(-1, k).sum(1), torch.zeros(8 // k, dtype=torch.float64),
                          atol=1e-9)


def test_group_sizes_checked() -> None:
    with pytest.raises(ValueError, match="batch of 5 rewards is not divisible by group_size 2"):
        group_normalize(torch.zeros(5), 2)
    with pytest.raises(ValueError, match="not divisible"):
        rloo(torch.zeros(7), 3)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        rloo(torch.zeros(4), 1)
    with pytest.raises(ValueError, match="1-D"):
        group_normalize(torch.zeros(2, 2), 2)


def test_adaptive_kl_controller_follows_the_formula() -> None:
    ctl = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10_000)
    # KL 12: error 12/6 - 1 = 1, clipped to 0.2 -> 0.1 * (1 + 0.2 * 256 / 10000) = 0.100512
    assert ctl.update(12.0, n_steps=256) == pytest.approx(0.100512)
    assert ctl.value == pytest.approx(0.100512)
    # KL 6.6: error 0.1 -> times 1 + 0.1 * 256 / 10000 = 1.00256
    assert ctl.update(6.6, 256) == pytest.approx(0.100512 * 1.00256)
    # KL 3: error -0.5, clipped to -0.2 -> times 1 - 0.00512; moves down
    prev = ctl.value
    assert ctl.update(torch.tensor(3.0), 256) == pytest.approx(prev * (1 - 0.00512))
    assert ctl.value < prev
    # on target: unchanged
    prev = ctl.value
    assert ctl.update(6.0, 256) == pytest.approx(prev)
    with pytest.raises(ValueError, match="target and horizon must be > 0"):
        AdaptiveKLController(0.1, target=0.0, horizon=10)


def test_fixed_kl_controller_keeps_its_value() -> None:
    ctl = FixedKLController(0.05)
    assert ctl.update(100.0, 256) == 0.05
    assert ctl.value == 0.05
