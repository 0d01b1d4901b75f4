"""Every loss of every algorithm, as pure tensor functions.

Tensors in, ``(loss, metrics)`` out: no model call, no config object, no
distributed call. ``metrics`` maps namespaced names (``loss/policy``,
``policy/clipfrac``, ...) to detached scalar tensors, so a stage can log them
without a device sync per value. This module imports only torch.

Masks are 0/1 (bool or float) with the shape of the per-token tensor they go
with, ``[B, T]``. Masked positions never reach a result, even when they hold
NaN or -inf (padding often does): they are selected away with ``torch.where``
before any arithmetic whose gradient could turn ``0 * inf`` into NaN.

How GRPO composes from these pieces (Shao et al. 2024, eq. 3; there is no
separate ``grpo_policy_loss``)::

    adv = advantages.group_normalize(scores, group_size)        # [B]
    loss, m = ppo_policy_loss(logprobs, old_logprobs, adv, mask,
                              cliprange=0.2, agg="sequence")    # adv broadcast over T
    kl = kl_k3(logprobs, ref_logprobs)                          # [B, T]
    loss = loss + beta * aggregate(kl, mask, "sequence")

``agg="sequence"`` is the original GRPO normalisation (1/|o_i| inside the
sum); Dr.GRPO (Liu et al. 2025) and DAPO (Yu et al. 2025) use ``agg="token"``
instead, and DAPO adds ``cliprange_high`` ("clip-higher"). GRPO's KL term is
the k3 estimator with r = pi_ref / pi_theta, exactly :func:`kl_k3`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Metrics = dict[str, Tensor]


# --------------------------------------------------------------------------
# Masked reductions and aggregation
# --------------------------------------------------------------------------


def _zero_masked(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with masked positions replaced by 0 (NaN/inf there do not leak)."""
    return torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` over positions where ``mask`` is 1 (all dims, or ``dim``)."""
    x = _zero_masked(x, mask)
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over unmasked positions; an all-masked slice gives 0, not NaN."""
    count = mask.to(x.dtype).sum() if dim is None else mask.to(x.dtype).sum(dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over all unmasked positions (one scalar).

    ``unbiased=True`` applies Bessel's correction n / (n - 1). Raises
    ValueError when fewer entries are unmasked than the estimate needs
    (1, or 2 when unbiased) rather than returning NaN or inf.
    """
    n = int(mask.bool().sum())
    need = 2 if unbiased else 1
    if n < need:
        raise ValueError(f"masked_var needs at least {need} unmasked entries, got {n}")
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return var * (n / (n - 1)) if unbiased else var


def _agg_token(per_token: Tensor, mask: Tensor) -> Tensor:
    # Every token weighs the same: sum over the batch / tokens in the batch.
    return masked_mean(per_token, mask)


def _agg_sequence(per_token: Tensor, mask: Tensor) -> Tensor:
    # Mean within each sequence, then mean over the sequences that have tokens.
    per_seq = masked_mean(per_token, mask, dim=-1)  # [B]
    has_tokens = mask.bool().any(-1)  # [B]
    return masked_mean(per_seq, has_tokens)


def _agg_sum(per_token: Tensor, mask: Tensor) -> Tensor:
    # Sum within each sequence, then mean over the sequences that have tokens.
    per_seq = masked_sum(per_token, mask, dim=-1)  # [B]
    has_tokens = mask.bool().any(-1)  # [B]
    return masked_mean(per_seq, has_tokens)


AGGREGATIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "token": _agg_token,
    "sequence": _agg_sequence,
    "sum": _agg_sum,
}


def aggregate(per_token: Tensor, mask: Tensor, mode: str = "token") -> Tensor:
    """Reduce a per-token loss ``[B, T]`` to a scalar.

    - ``"token"``: sum over all unmasked tokens / their number. Long and short
      responses weigh the same per token; used by Dr.GRPO (Liu et al. 2025)
      and DAPO (Yu et al. 2025), and the usual choice for PPO on LMs.
    - ``"sequence"``: mean over tokens within each sequence, then mean over
      sequences; the original GRPO objective (Shao et al. 2024, eq. 3), which
      gives each token of a long response less weight.
    - ``"sum"``: sum within each sequence, then mean over sequences
      ("seq-mean-token-sum"); the per-sequence objective of REINFORCE/RLOO.

    Rows without any unmasked token are left out of the mean over sequences.
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {mode!r}; expected one of {sorted(AGGREGATIONS)}")
    if per_token.shape != mask.shape:
        raise ValueError(f"per_token {tuple(per_token.shape)} and mask {tuple(mask.shape)} differ")
    return AGGREGATIONS[mode](per_token, mask)


# --------------------------------------------------------------------------
# Reward model
# --------------------------------------------------------------------------


def _check_pair(chosen: Tensor, rejected: Tensor) -> None:
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} differ")


def _win_rate(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Share of pairs with chosen above rejected; a tie counts half (an untrained model: 0.5)."""
    return ((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).mean()


def bradley_terry(chosen_rewards: Tensor, rejected_rewards: Tensor,
                  margin: Tensor | None = None,
                  weights: Tensor | None = None) -> tuple[Tensor, Metrics]:
    """Pairwise reward-model loss: mean of ``w * -log sigmoid(r_c - r_r - margin)``.

    The Bradley-Terry model P(chosen > rejected) = sigmoid(r_c - r_r)
    (Ouyang et al. 2022, eq. 1). ``margin`` [B] asks for a gap of at least
    that much (Llama 2, Touvron et al. 2023, eq. 2). ``weights`` [B] (>= 0,
    positive sum) normalise by their sum, e.g. rater confidence. Rewards [B].
    The accuracy metric is unweighted and counts ties as half.
    """
    _check_pair(chosen_rewards, rejected_rewards)
    diff = chosen_rewards - rejected_rewards  # [B]
    logits = diff if margin is None else diff - margin  # [B]
    per_pair = -F.logsigmoid(logits)  # [B]
    if weights is None:
        loss = per_pair.mean()
    else:
        loss = (weights * per_pair).sum() / weights.sum()
    metrics = {
        "loss/rm": loss.detach(),
        "rm/accuracy": _win_rate(chosen_rewards, rejected_rewards).detach(),
        "rm/margin_mean": diff.mean().detach(),
        "rm/chosen_mean": chosen_rewards.mean().detach(),
        "rm/rejected_mean": rejected_rewards.mean().detach(),
    }
    return loss, metrics


def reward_centering(chosen_rewards: Tensor, rejected_rewards: Tensor,
                     coef: float) -> tuple[Tensor, Metrics]:
    """Auxiliary loss ``coef * mean((r_c + r_r)^2)`` that pins the mean reward near 0.

    Bradley-Terry only sees differences, so the reward's offset drifts freely;
    Eisenstein et al. 2023 ("Helping or Herding?", sec. 3) add this term so
    rewards from different models are comparable. Add it to the BT loss.
    """
    _check_pair(chosen_rewards, rejected_rewards)
    loss = coef * ((chosen_rewards + rejected_rewards) ** 2).mean()
    return loss, {"loss/rm_centering": loss.detach()}


# --------------------------------------------------------------------------
# DPO family. Inputs are summed sequence log-probs [B] of chosen and rejected
# responses under the policy and the (frozen) reference model.
# --------------------------------------------------------------------------


def _dpo_logratio(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
                  ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
                  beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Return h = log-ratio difference [B] and the implicit rewards of chosen and rejected."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    for name, t in (("policy_rejected_logps", policy_rejected_logps),
                    ("ref_chosen_logps", ref_chosen_logps),
                    ("ref_rejected_logps", ref_rejected_logps)):
        if t.shape != policy_chosen_logps.shape:
            raise ValueError(f"{name} {tuple(t.shape)} differs from policy_chosen_logps "
                             f"{tuple(policy_chosen_logps.shape)}")
    chosen_logratio = policy_chosen_logps - ref_chosen_logps  # [B]
    rejected_logratio = policy_rejected_logps - ref_rejected_logps  # [B]
    h = chosen_logratio - rejected_logratio  # [B]
    # Implicit reward of DPO (Rafailov et al. 2023, sec. 5): beta * log(pi / pi_ref).
    return h, beta * chosen_logratio, beta * rejected_logratio


def _dpo_metrics(loss: Tensor, chosen_rewards: Tensor, rejected_rewards: Tensor) -> Metrics:
    return {
        "loss/dpo": loss.detach(),
        "rewards/chosen": chosen_rewards.mean().detach(),
        "rewards/rejected": rejected_rewards.mean().detach(),
        "rewards/margin": (chosen_rewards - rejected_rewards).mean().detach(),
        "rewards/accuracy": _win_rate(chosen_rewards, rejected_rewards).detach(),
    }


def _check_smoothing(label_smoothing: float) -> None:
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")


def dpo_sigmoid(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
                ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
                beta: float, label_smoothing: float = 0.0) -> tuple[Tensor, Metrics]:
    """DPO loss ``-log sigmoid(beta * h)`` (Rafailov et al. 2023, eq. 7).

    h = (log pi(y_c) - log pi_ref(y_c)) - (log pi(y_r) - log pi_ref(y_r)).
    ``label_smoothing`` = eps > 0 is conservative DPO (Mitchell 2023): the
    label is assumed flipped with probability eps, so the loss becomes
    ``-(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)``. At the
    reference point (h = 0) the loss is log 2 for any eps.
    """
    _check_smoothing(label_smoothing)
    h, chosen_rewards, rejected_rewards = _dpo_logratio(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    per_pair = (-(1.0 - label_smoothing) * F.logsigmoid(beta * h)
                - label_smoothing * F.logsigmoid(-beta * h))  # [B]
    loss = per_pair.mean()
    return loss, _dpo_metrics(loss, chosen_rewards, rejected_rewards)


def dpo_ipo(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
            ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
            beta: float) -> tuple[Tensor, Metrics]:
    """IPO loss ``(h - 1/(2 beta))^2`` (Azar et al. 2023, eq. 17; beta is their tau).

    h is the log-ratio difference as in :func:`dpo_sigmoid`. We do NOT average
    log-probs per token: h uses the log-probs as passed, i.e. summed over the
    sequence as in the paper. (TRL divides by the response length first, which
    changes the scale on which beta acts; pass per-token means to get that.)
    The regression target pulls h to 1/(2 beta) instead of to infinity.
    """
    h, chosen_rewards, rejected_rewards = _dpo_logratio(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    loss = ((h - 1.0 / (2.0 * beta)) ** 2).mean()
    return loss, _dpo_metrics(loss, chosen_rewards, rejected_rewards)


def dpo_robust(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
               ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
               beta: float, label_smoothing: float) -> tuple[Tensor, Metrics]:
    """Robust DPO (rDPO; Chowdhury et al. 2024, eq. 7) for labels flipped with prob. eps.

    With l(h) = -log sigmoid(beta h): ``((1 - eps) l(h) - eps l(-h)) / (1 - 2 eps)``,
    an unbiased estimate of the clean-label DPO loss (unlike cDPO, which
    mixes the two terms with a plus sign). Needs 0 <= eps < 0.5; eps = 0 is DPO.
    """
    _check_smoothing(label_smoothing)
    h, chosen_rewards, rejected_rewards = _dpo_logratio(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    eps = label_smoothing
    per_pair = ((1.0 - eps) * -F.logsigmoid(beta * h)
                - eps * -F.logsigmoid(-beta * h)) / (1.0 - 2.0 * eps)  # [B]
    loss = per_pair.mean()
    return loss, _dpo_metrics(loss, chosen_rewards, rejected_rewards)


# --------------------------------------------------------------------------
# PPO
# --------------------------------------------------------------------------


def ppo_policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                    cliprange: float = 0.2, agg: str = "token",
                    cliprange_high: float | None = None) -> tuple[Tensor, Metrics]:
    """Clipped surrogate ``-min(r A, clip(r, 1 - eps, 1 + eps_high) A)`` (Schulman et al. 2017, eq. 7).

    r = exp(logprobs - old_logprobs) per token [B, T]; ``advantages`` is
    [B, T] (PPO with GAE) or [B] (one advantage per sequence: GRPO, RLOO),
    broadcast over T. ``cliprange_high`` (default: ``cliprange``) is DAPO's
    clip-higher (Yu et al. 2025): a larger upper bound keeps low-probability
    tokens from being held back, which fights entropy collapse.
    Metrics: ``policy/approx_kl`` is k3 of KL(old || new) on the rollout's
    samples, mean((r - 1) - log r); ``policy/clipfrac`` the share of tokens
    where the clipped term is the active one.
    """
    if advantages.dim() == logprobs.dim() - 1:
        advantages = advantages.unsqueeze(-1).expand_as(logprobs)  # [B] -> [B, T]
    eps_low = cliprange
    eps_high = cliprange if cliprange_high is None else cliprange_high
    # Zero the log-ratio and advantage on padding before exp/multiply, so that
    # -inf or NaN there cannot make a NaN gradient.
    log_ratio = _zero_masked(logprobs - old_logprobs.detach(), mask)  # [B, T]
    adv = _zero_masked(advantages.detach(), mask)  # [B, T]
    ratio = torch.exp(log_ratio)  # [B, T]
    unclipped = -adv * ratio  # [B, T]
    clipped = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)  # [B, T]
    per_token = torch.maximum(unclipped, clipped)  # [B, T]
    loss = aggregate(per_token, mask, agg)
    with torch.no_grad():
        metrics = {
            "loss/policy": loss.detach(),
            "policy/clipfrac": masked_mean((clipped > unclipped).to(ratio.dtype), mask),
            "policy/approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "policy/ratio_mean": masked_mean(ratio, mask),
        }
    return loss, metrics


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               cliprange_value: float | None = 0.2, agg: str = "token") -> tuple[Tensor, Metrics]:
    """Clipped value loss ``0.5 * max((v - R)^2, (clip(v, v_old +- eps) - R)^2)``.

    The value prediction may move at most ``cliprange_value`` from the
    rollout's ``old_values`` before the loss stops rewarding the move; the
    pessimistic max is from OpenAI baselines' ppo2 (also Ziegler et al. 2019).
    ``cliprange_value=None`` gives the plain squared error. All tensors [B, T].
    """
    returns = _zero_masked(returns.detach(), mask)  # [B, T]
    old_values = _zero_masked(old_values.detach(), mask)  # [B, T]
    values_m = _zero_masked(values, mask)  # [B, T]
    unclipped = (values_m - returns) ** 2  # [B, T]
    if cliprange_value is None:
        clipped = unclipped
    else:
        v_clipped = old_values + torch.clamp(values_m - old_values,
                                             -cliprange_value, cliprange_value)  # [B, T]
        clipped = (v_clipped - returns) ** 2  # [B, T]
    per_token = 0.5 * torch.maximum(unclipped, clipped)  # [B, T]
    loss = aggregate(per_token, mask, agg)
    with torch.no_grad():
        metrics = {
            "loss/value": loss.detach(),
            "value/clipfrac": masked_mean((clipped > unclipped).to(per_token.dtype), mask),
            "value/mean": masked_mean(values.detach(), mask),
        }
    return loss, metrics


# --------------------------------------------------------------------------
# KL estimators, per token. Samples come from p = the policy; q = the
# reference. Schulman, "Approximating KL Divergence" (2020 blog post).
# --------------------------------------------------------------------------


def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k1 = log p - log q: unbiased for KL(p || q), high variance, can be negative."""
    return logprobs - ref_logprobs


def kl_k2(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k2 = 0.5 (log p - log q)^2: always >= 0, biased, low variance when p is near q."""
    return 0.5 * (logprobs - ref_logprobs) ** 2


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k3 = (r - 1) - log r with r = q / p: unbiased for KL(p || q) and always >= 0.

    Written as expm1(d) - d with d = log q - log p, which keeps precision when
    p is close to q (expm1 does not cancel).
    """
    d = ref_logprobs - logprobs
    return torch.expm1(d) - d


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "k1": kl_k1,
    "k2": kl_k2,
    "k3": kl_k3,
}


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: str) -> Tensor:
    """Per-token KL estimate [B, T] by estimator name: ``"k1"``, ``"k2"`` or ``"k3"``."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {sorted(KL_ESTIMATORS)}")
    return KL_ESTIMATORS[estimator](logprobs, ref_logprobs)


# --------------------------------------------------------------------------
# Entropy and SFT
# --------------------------------------------------------------------------


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the softmax at every position: ``[B, T, V] -> [B, T]``, in float32 or wider.

    H = logsumexp(z) - sum_v softmax(z)_v z_v, which never takes log of a
    tiny probability. z is shifted by its max first, so the two terms stay
    small and do not cancel when logits are large. Logits of -inf (banned
    tokens) contribute 0.
    """
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    z = z - z.max(dim=-1, keepdim=True).values.detach()  # [B, T, V]; H is shift-invariant
    probs = torch.softmax(z, dim=-1)  # [B, T, V]
    z_finite = torch.where(probs > 0, z, torch.zeros((), dtype=z.dtype, device=z.device))
    return torch.logsumexp(z, dim=-1) - (probs * z_finite).sum(-1)  # [B, T]


def sft_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> tuple[Tensor, Metrics]:
    """Token-mean cross entropy for next-token prediction.

    Shifted inside: ``logits[:, :-1]`` predicts ``labels[:, 1:]``, so pass
    logits [B, T, V] and labels [B, T] aligned with the input ids. Labels equal
    to ``ignore_index`` (prompt, padding) are left out; with no target token
    at all the loss is 0 (and its gradient too) rather than NaN.
    """
    shift_logits = logits[:, :-1].float()  # [B, T-1, V]
    shift_labels = labels[:, 1:]  # [B, T-1]
    total = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                            shift_labels.reshape(-1), ignore_index=ignore_index,
                            reduction="sum")
    n_tokens = (shift_labels != ignore_index).sum()
    loss = total / n_tokens.clamp(min=1)
    return loss, {"loss/sft": loss.detach(), "sft/tokens": n_tokens.detach().float()}

