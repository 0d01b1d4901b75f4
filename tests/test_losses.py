"""Every loss and KL estimator against arithmetic written out in the comments."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.losses import (
    aggregate,
    bradley_terry,
    dpo_ipo,
    dpo_robust,
    dpo_sigmoid,
    entropy_from_logits,
    kl_k1,
    kl_k2,
    kl_k3,
    kl_penalty,
    masked_mean,
    masked_sum,
    masked_var,
    ppo_policy_loss,
    reward_centering,
    sft_loss,
    value_loss,
)

torch.set_num_threads(1)
E = math.e
LOG2 = math.log(2.0)


class approx:  # noqa: N801 - reads like pytest.approx
    """pytest.approx for 0-d tensors (and floats): ``loss == approx(0.3)``."""

    def __init__(self, expected: torch.Tensor | float, rel: float = 1e-6,
                 abs: float = 1e-6) -> None:  # noqa: A002
        if isinstance(expected, torch.Tensor):
            expected = expected.detach()
        self.expected = pytest.approx(float(expected), rel=rel, abs=abs)

    def __eq__(self, actual: object) -> bool:
        if isinstance(actual, torch.Tensor):
            actual = actual.detach()
        return float(actual) == self.expected  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return repr(self.expected)


def _nll(x: float) -> float:
    """-log sigmoid(x) = log(1 + exp(-x))."""
    return math.log1p(math.exp(-x))


# ---------------------------------------------------------------- reductions


def test_masked_reductions_hand_numbers_ignore_nan_and_inf_in_padding() -> None:
    x = torch.tensor([[1.0, 2.0, float("nan")], [3.0, float("inf"), 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    # unmasked: 1, 2, 3, 5 -> sum 11, mean 2.75
    assert masked_sum(x, mask) == approx(11.0)
    assert masked_mean(x, mask) == approx(2.75)
    # per row: (1+2)/2 = 1.5, (3+5)/2 = 4
    assert torch.allclose(masked_mean(x, mask, dim=-1), torch.tensor([1.5, 4.0]))
    assert torch.allclose(masked_sum(x, mask, dim=-1), torch.tensor([3.0, 8.0]))
    # squared deviations from 2.75: 3.0625 + 0.5625 + 0.0625 + 5.0625 = 8.75
    # biased 8.75 / 4 = 2.1875, unbiased 8.75 / 3 = 2.91667
    assert masked_var(x, mask, unbiased=False) == approx(2.1875)
    assert masked_var(x, mask) == approx(8.75 / 3)
    # a bool mask gives the same
    assert masked_mean(x, mask.bool()) == approx(2.75)


def test_masked_mean_of_empty_row_is_zero_and_var_needs_entries() -> None:
    x = torch.tensor([[1.0, 2.0], [7.0, 8.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    assert torch.equal(masked_mean(x, mask, dim=-1), torch.tensor([1.5, 0.0]))
    with pytest.raises(ValueError, match="at least 2 unmasked entries, got 1"):
        masked_var(x, torch.tensor([[1, 0], [0, 0]]))
    with pytest.raises(ValueError, match="at least 1 unmasked entries, got 0"):
        masked_var(x, torch.zeros(2, 2), unbiased=False)


def test_aggregate_modes_hand_numbers() -> None:
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])  # row 3 is empty
    # token: (1+2+3+4) / 4 tokens = 2.5
    assert aggregate(per_token, mask, "token") == approx(2.5)
    # sequence: row means 2 and 4 -> 3 (the empty row is left out)
    assert aggregate(per_token, mask, "sequence") == approx(3.0)
    # sum: row sums 6 and 4 -> 5
    assert aggregate(per_token, mask, "sum") == approx(5.0)
    with pytest.raises(ValueError, match="unknown aggregation 'mean'"):
        aggregate(per_token, mask, "mean")
    with pytest.raises(ValueError, match="differ"):
        aggregate(per_token, mask[:, :2], "token")


def _random_batch(seed: int, b: int = 8, t: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    per_token = torch.randn(b, t, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    return per_token, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aggregate_half_batch_invariance(seed: int) -> None:
    per_token, mask = _random_batch(seed)
    a, b = slice(0, 4), slice(4, 8)
    # sequence and sum modes: a plain mean of the two half-batch losses
    for mode in ("sequence", "sum"):
        full = aggregate(per_token, mask, mode)
        halves = 0.5 * (aggregate(per_token[a], mask[a], mode) + aggregate(per_token[b], mask[b], mode))
        assert full == approx(halves, rel=1e-12)
    # token mode: the halves weighted by their token counts
    n_a, n_b = mask[a].sum(), mask[b].sum()
    full = aggregate(per_token, mask, "token")
    weighted = (n_a * aggregate(per_token[a], mask[a], "token")
                + n_b * aggregate(per_token[b], mask[b], "token")) / (n_a + n_b)
    assert full == approx(weighted, rel=1e-12)
    # ...and the unweighted mean of halves is NOT the full token mean in general
    unweighted = 0.5 * (aggregate(per_token[a], mask[a], "token")
                        + aggregate(per_token[b], mask[b], "token"))
    if n_a != n_b:
        assert abs(float(full - unweighted)) > 1e-9


@settings(max_examples=30, deadline=None)
@given(c=st.floats(-100, 100), seed=st.integers(0, 2**16))
def test_aggregate_of_constant_is_the_constant(c: float, seed: int) -> None:
    _, mask = _random_batch(seed)
    per_token = torch.full(mask.shape, c, dtype=torch.float64)
    assert aggregate(per_token, mask, "token") == approx(c, rel=1e-9, abs=1e-9)
    assert aggregate(per_token, mask, "sequence") == approx(c, rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------- reward model


def test_bradley_terry_hand_numbers() -> None:
    rc = torch.tensor([2.0, 0.0], requires_grad=True)
    rr = torch.tensor([0.0, 0.0])
    loss, m = bradley_terry(rc, rr)
    # -log sigmoid(2) = 0.126928, -log sigmoid(0) = log 2 = 0.693147 -> mean 0.410038
    assert loss == approx((_nll(2.0) + LOG2) / 2)
    assert loss == approx(0.410038, rel=1e-5)
    # one win, one tie (counts half) -> 0.75
    assert m["rm/accuracy"] == approx(0.75)
    assert m["rm/margin_mean"] == approx(1.0)
    assert m["rm/chosen_mean"] == approx(1.0)
    assert m["rm/rejected_mean"] == approx(0.0)
    assert m["loss/rm"] == approx(loss)
    assert all(not v.requires_grad and v.dim() == 0 for v in m.values())
    loss.backward()
    # d/d rc of -log sigmoid(rc - rr) = -(1 - sigmoid) < 0: raising chosen lowers the loss
    assert (rc.grad < 0).all()


def test_bradley_terry_margin_and_weights() -> None:
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    # margin 2 on the first pair: logit 2 - 0 - 2 = 0 -> both pairs log 2
    loss, _ = bradley_terry(rc, rr, margin=torch.tensor([2.0, 0.0]))
    assert loss == approx(LOG2)
    # weights 3 and 1: (3 * 0.126928 + 1 * 0.693147) / 4 = 0.268483
    loss, _ = bradley_terry(rc, rr, weights=torch.tensor([3.0, 1.0]))
    assert loss == approx((3 * _nll(2.0) + LOG2) / 4)
    with pytest.raises(ValueError, match="differ"):
        bradley_terry(rc, rr[:1])


def test_reward_centering_hand_numbers() -> None:
    # sums 0 and 3 -> mean of squares (0 + 9) / 2 = 4.5, times coef 0.1 = 0.45
    loss, m = reward_centering(torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 1.0]), coef=0.1)
    assert loss == approx(0.45)
    assert m["loss/rm_centering"] == approx(0.45)


# ---------------------------------------------------------------- DPO family


def _logps(*values: float) -> list[torch.Tensor]:
    return [torch.tensor([v]) for v in values]


def test_dpo_at_reference_point_is_log2() -> None:
    g = torch.Generator().manual_seed(0)
    chosen, rejected = -10 * torch.rand(5, generator=g), -10 * torch.rand(5, generator=g)
    for fn, kw in ((dpo_sigmoid, {}), (dpo_sigmoid, {"label_smoothing": 0.1}),
                   (dpo_robust, {"label_smoothing": 0.2})):
        loss, m = fn(chosen, rejected, chosen, rejected, beta=0.1, **kw)
        # h = 0 -> -log sigmoid(0) = log 2 (cDPO and rDPO mix log 2 with log 2)
        assert loss == approx(LOG2)
        assert m["loss/dpo"] == approx(LOG2)
        assert m["rewards/chosen"] == approx(0.0)
        assert m["rewards/rejected"] == approx(0.0)
        assert m["rewards/margin"] == approx(0.0)
        assert m["rewards/accuracy"] == approx(0.5)  # all ties
    # IPO at h = 0: (0 - 1 / (2 * 0.1))^2 = 25
    loss, _ = dpo_ipo(chosen, rejected, chosen, rejected, beta=0.1)
    assert loss == approx(25.0)


def test_dpo_away_from_reference_hand_numbers() -> None:
    # policy chosen -1, rejected -3; reference -2 and -2; beta 0.5
    # log-ratios: chosen +1, rejected -1 -> h = 2, beta * h = 1
    args = _logps(-1.0, -3.0, -2.0, -2.0)
    loss, m = dpo_sigmoid(*args, beta=0.5)
    # -log sigmoid(1) = log(1 + e^-1) = 0.313262
    assert loss == approx(0.313262, rel=1e-5)
    assert m["rewards/chosen"] == approx(0.5)  # 0.5 * (+1)
    assert m["rewards/rejected"] == approx(-0.5)  # 0.5 * (-1)
    assert m["rewards/margin"] == approx(1.0)
    assert m["rewards/accuracy"] == approx(1.0)
    # cDPO eps 0.1: 0.9 * 0.313262 + 0.1 * (-log sigmoid(-1) = 1.313262) = 0.413262
    loss, _ = dpo_sigmoid(*args, beta=0.5, label_smoothing=0.1)
    assert loss == approx(0.9 * _nll(1.0) + 0.1 * _nll(-1.0))
    assert loss == approx(0.413262, rel=1e-5)
    # rDPO eps 0.1: (0.9 * 0.313262 - 0.1 * 1.313262) / 0.8 = 0.188262
    loss, _ = dpo_robust(*args, beta=0.5, label_smoothing=0.1)
    assert loss == approx((0.9 * _nll(1.0) - 0.1 * _nll(-1.0)) / 0.8)
    assert loss == approx(0.188262, rel=1e-5)
    # rDPO with eps 0 is DPO
    assert dpo_robust(*args, beta=0.5, label_smoothing=0.0)[0] == approx(_nll(1.0))
    # IPO beta 0.5: target 1 / (2 * 0.5) = 1, h = 2 -> (2 - 1)^2 = 1
    loss, _ = dpo_ipo(*args, beta=0.5)
    assert loss == approx(1.0)


def test_dpo_gradient_raises_chosen_and_lowers_rejected() -> None:
    pc = torch.tensor([-5.0], requires_grad=True)
    pr = torch.tensor([-5.0], requires_grad=True)
    loss, _ = dpo_sigmoid(pc, pr, torch.tensor([-5.0]), torch.tensor([-5.0]), beta=0.1)
    loss.backward()
    # at h = 0: d loss / d pc = -beta * sigmoid(0) = -0.05, d / d pr = +0.05
    assert pc.grad.item() == approx(-0.05)
    assert pr.grad.item() == approx(0.05)


def test_dpo_rejects_bad_arguments() -> None:
    args = _logps(-1.0, -3.0, -2.0, -2.0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo_sigmoid(*args, beta=0.0)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 0.5\)"):
        dpo_robust(*args, beta=0.1, label_smoothing=0.5)
    with pytest.raises(ValueError, match="ref_chosen_logps"):
        dpo_ipo(args[0], args[1], torch.zeros(2), args[3], beta=0.1)


# ---------------------------------------------------------------- PPO


def test_ppo_at_reference_point_loss_is_minus_advantage() -> None:
    g = torch.Generator().manual_seed(0)
    logprobs = -torch.rand(3, 5, generator=g)
    adv = torch.randn(3, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    loss, m = ppo_policy_loss(logprobs, logprobs.clone(), adv, mask)
    # ratio 1 everywhere -> per-token loss -A, never clipped, k3 of log 1 = 0
    assert loss == approx(-masked_mean(adv, mask))
    assert m["loss/policy"] == approx(loss)
    assert m["policy/clipfrac"] == approx(0.0)
    assert m["policy/approx_kl"] == approx(0.0)
    assert m["policy/ratio_mean"] == approx(1.0)


def test_ppo_clipping_hand_numbers() -> None:
    # one token per row, all in one batch; eps = 0.2
    log_ratio = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    adv = torch.tensor([[2.0], [-1.0], [-1.0], [1.0]])
    mask = torch.ones(4, 1)
    old = torch.zeros(4, 1)
    per_row = []
    for i in range(4):
        loss_i, m_i = ppo_policy_loss(log_ratio[i:i + 1], old[i:i + 1], adv[i:i + 1], mask[i:i + 1])
        per_row.append((float(loss_i), float(m_i["policy/clipfrac"])))
    # ratio e, A 2: min(2e = 5.4366, 1.2 * 2 = 2.4) = 2.4 -> loss -2.4, clipped
    assert per_row[0] == (approx(-2.4), 1.0)
    # ratio e, A -1: pessimistic max(e, 1.2) = e -> loss 2.71828, not clipped
    assert per_row[1] == (approx(E), 0.0)
    # ratio 1/e = 0.3679, A -1: max(0.3679, 0.8) = 0.8 -> loss 0.8, clipped
    assert per_row[2] == (approx(0.8), 1.0)
    # ratio 1/e, A 1: max(-0.3679, -0.8) = -0.3679, not clipped
    assert per_row[3] == (approx(-1 / E), 0.0)
    loss, m = ppo_policy_loss(log_ratio, old, adv, mask)
    # token mean of the four: (-2.4 + e + 0.8 - 1/e) / 4
    assert loss == approx((-2.4 + E + 0.8 - 1 / E) / 4)
    assert m["policy/clipfrac"] == approx(0.5)
    # k3 per token: (e - 1) - 1 = 0.718282 twice, (1/e - 1) + 1 = 0.367879 twice
    assert m["policy/approx_kl"] == approx(((E - 2) + 1 / E) / 2)
    assert m["policy/ratio_mean"] == approx((E + 1 / E) / 2)


def test_ppo_clip_higher() -> None:
    # ratio e^0.25 = 1.2840, A 1: symmetric clip 1.2 -> -1.2; clip-higher 1.28 -> -1.28
    lp, old, adv, mask = torch.tensor([[0.25]]), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1)
    assert ppo_policy_loss(lp, old, adv, mask)[0] == approx(-1.2)
    assert ppo_policy_loss(lp, old, adv, mask, cliprange_high=0.28)[0] == approx(-1.28)
    # the low side still uses cliprange: ratio e^-1, A -1 -> max(0.368, 0.8) = 0.8
    assert ppo_policy_loss(-torch.ones(1, 1), old, -adv, mask, cliprange_high=0.28)[0] == approx(0.8)


def test_ppo_gradient_zero_when_clipped_and_finite_on_inf_padding() -> None:
    lp = torch.tensor([[1.0, 0.0, float("-inf")]], requires_grad=True)
    old = torch.tensor([[0.0, 0.0, float("-inf")]])
    adv = torch.tensor([[2.0, 3.0, float("nan")]])
    mask = torch.tensor([[1, 1, 0]])
    loss, _ = ppo_policy_loss(lp, old, adv, mask)
    loss.backward()
    # token 1 is clipped (ratio e > 1.2, A > 0): no gradient.
    # token 2: d(-A r)/d logp = -A r / 2 tokens = -3 * 1 / 2 = -1.5; padding: 0
    assert torch.isfinite(loss)
    assert torch.equal(lp.grad, torch.tensor([[0.0, -1.5, 0.0]]))


def test_ppo_sequence_advantage_broadcasts_and_aggregation() -> None:
    g = torch.Generator().manual_seed(1)
    lp, old = -torch.rand(4, 6, generator=g), -torch.rand(4, 6, generator=g)
    adv = torch.randn(4, generator=g)
    _, mask = _random_batch(3, b=4, t=6)
    for agg in ("token", "sequence", "sum"):
        a, _ = ppo_policy_loss(lp, old, adv, mask, agg=agg)
        b, _ = ppo_policy_loss(lp, old, adv[:, None].expand(4, 6), mask, agg=agg)
        assert a == approx(b)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.0, 5.0))
def test_ppo_loss_with_zero_advantage_is_zero(seed: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    lp, old = scale * torch.randn(2, 4, generator=g), scale * torch.randn(2, 4, generator=g)
    loss, _ = ppo_policy_loss(lp, old, torch.zeros(2, 4), torch.ones(2, 4))
    assert float(loss) == 0.0


def test_value_loss_hand_numbers() -> None:
    old = torch.tensor([[1.0, 1.0, 1.0]])
    ret = torch.tensor([[2.0, 2.0, 0.0]])
    values = torch.tensor([[1.5, 1.1, 0.5]])
    mask = torch.ones(1, 3)
    # token 1: unclipped (1.5-2)^2 = 0.25; clipped v 1.2 -> 0.64; 0.5 * max = 0.32 (clipped)
    # token 2: v 1.1 within 1 +- 0.2: 0.5 * 0.81 = 0.405
    # token 3: unclipped (0.5-0)^2 = 0.25; clipped v 0.8 -> 0.64; 0.32 (clipped)
    loss, m = value_loss(values, old, ret, mask)
    assert loss == approx((0.32 + 0.405 + 0.32) / 3)
    assert m["loss/value"] == approx(loss)
    assert m["value/clipfrac"] == approx(2 / 3)
    assert m["value/mean"] == approx((1.5 + 1.1 + 0.5) / 3)
    # unclipped: 0.5 * (0.25 + 0.81 + 0.25) / 3
    loss, m = value_loss(values, old, ret, mask, cliprange_value=None)
    assert loss == approx(0.5 * 1.31 / 3)
    assert m["value/clipfrac"] == approx(0.0)
    # masked tokens: only token 2 counts
    loss, _ = value_loss(values, old, ret, torch.tensor([[0, 1, 0]]))
    assert loss == approx(0.405)


# ---------------------------------------------------------------- KL


def test_kl_estimators_hand_numbers() -> None:
    lp, ref = torch.tensor([0.0]), torch.tensor([LOG2])
    # log p - log q = -log 2 = -0.693147
    assert kl_k1(lp, ref) == approx(-LOG2)
    # 0.5 * (log 2)^2 = 0.240227
    assert kl_k2(lp, ref) == approx(0.5 * LOG2**2)
    # r = q / p = 2: (2 - 1) - log 2 = 0.306853
    assert kl_k3(lp, ref) == approx(1 - LOG2)
    for name, fn in (("k1", kl_k1), ("k2", kl_k2), ("k3", kl_k3)):
        assert torch.equal(kl_penalty(lp, ref, name), fn(lp, ref))
    with pytest.raises(ValueError, match="unknown KL estimator 'k4'"):
        kl_penalty(lp, ref, "k4")


def test_kl_k2_is_half_k1_squared_and_k3_nonnegative() -> None:
    g = torch.Generator().manual_seed(0)
    lp, ref = 3 * torch.randn(1000, generator=g), 3 * torch.randn(1000, generator=g)
    assert torch.allclose(kl_k2(lp, ref), 0.5 * kl_k1(lp, ref) ** 2)
    assert (kl_k3(lp, ref) >= 0).all()
    # k3 near p == q keeps precision: d = 1e-4 -> d^2 / 2 = 5e-9
    assert kl_k3(torch.tensor([0.0]), torch.tensor([1e-4])) == approx(5e-9, rel=1e-3, abs=0)


def test_k1_and_k3_unbiased_on_a_known_categorical() -> None:
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)  # policy, samples come from here
    q = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)  # reference
    true_kl = float((p * (p / q).log()).sum())  # KL(p || q) = 0.231...
    # exact expectations under p
    assert float((p * kl_k1(p.log(), q.log())).sum()) == approx(true_kl, rel=1e-12)
    assert float((p * kl_k3(p.log(), q.log())).sum()) == approx(true_kl, rel=1e-12)
    # Monte Carlo: 200k samples; std of the k3 mean is ~0.0007, so 0.005 is > 6 sigma
    g = torch.Generator().manual_seed(0)
    x = torch.multinomial(p, 200_000, replacement=True, generator=g)
    lp, ref = p.log()[x], q.log()[x]
    assert abs(float(kl_k1(lp, ref).mean()) - true_kl) < 0.005
    assert abs(float(kl_k3(lp, ref).mean()) - true_kl) < 0.005
    # k2 is biased: its mean differs from the true KL by far more than the noise
    assert abs(float(kl_k2(lp, ref).mean()) - true_kl) > 0.02


@settings(max_examples=50, deadline=None)
@given(lp=st.floats(-30, 0), ref=st.floats(-30, 0))
def test_k3_nonnegative_property(lp: float, ref: float) -> None:
    assert float(kl_k3(torch.tensor(lp), torch.tensor(ref))) >= 0.0


# ---------------------------------------------------------------- entropy and SFT


def test_entropy_hand_numbers_and_stability() -> None:
    # uniform over V = 7 -> log 7
    assert torch.allclose(entropy_from_logits(torch.zeros(2, 3, 7)), torch.full((2, 3), math.log(7)))
    # logits log 1, log 3 -> p = 0.25, 0.75: -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.562335
    h = entropy_from_logits(torch.tensor([[[0.0, math.log(3.0)]]]))
    assert h.shape == (1, 1)
    assert h == approx(0.562335, rel=1e-5)
    # large logits: a shift by 1e4 changes nothing (float64 so the input itself is exact)
    big = torch.tensor([[[1e4, 1e4 + math.log(3.0)]]], dtype=torch.float64)
    assert entropy_from_logits(big) == approx(0.562335, rel=1e-5)
    # float32 with a shift by 1e3 (ulp 6e-5): the max-shift keeps it to ~1e-5
    assert entropy_from_logits(big.float() - 9e3) == approx(0.562335, rel=1e-4)
    # banned tokens (-inf) contribute 0; a one-hot distribution has entropy 0
    z = torch.tensor([[[0.0, float("-inf"), float("-inf")]]], requires_grad=True)
    h = entropy_from_logits(z)
    h.sum().backward()
    assert h == approx(0.0)
    assert torch.isfinite(z.grad).all()
    # half precision comes back in float32
    assert entropy_from_logits(torch.zeros(1, 1, 4, dtype=torch.bfloat16)).dtype == torch.float32


def test_sft_loss_shifts_and_ignores() -> None:
    V = 4
    labels = torch.tensor([[-100, 2, 3, 1], [-100, -100, 0, -100]])
    # logits at t put all mass on labels[t + 1] -> loss ~ 0 if (and only if) shifted
    logits = torch.full((2, 4, V), -1e4)
    for b in range(2):
        for t in range(3):
            nxt = int(labels[b, t + 1])
            if nxt != -100:
                logits[b, t, nxt] = 0.0
    loss, m = sft_loss(logits, labels)
    assert loss == approx(0.0)
    # targets: 2, 3, 1 in row 1 and 0 in row 2 -> 4 tokens
    assert m["sft/tokens"] == approx(4.0)
    # uniform logits: every token costs log 4
    loss, m = sft_loss(torch.zeros(2, 4, V), labels)
    assert loss == approx(math.log(4))
    assert m["loss/sft"] == approx(math.log(4))


def test_sft_loss_without_targets_is_zero_not_nan() -> None:
    logits = torch.zeros(1, 3, 5, requires_grad=True)
    loss, m = sft_loss(logits, torch.full((1, 3), -100))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert m["sft/tokens"] == approx(0.0)
    assert torch.equal(logits.grad, torch.zeros_like(logits))
