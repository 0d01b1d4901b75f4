"""Advantage estimators and reward shaping for the RL stages.

Pure functions: they never change their inputs (nor any config) and return
new, detached tensors. The KL controllers are the one exception to "no state":
they are controllers, and keep their current coefficient in ``.value``.
This module imports only torch (and :mod:`tether.losses`, which imports only torch).

Shapes: per-token tensors are ``[B, T]`` with a 0/1 ``mask`` ``[B, T]`` that
marks response tokens (left padding, right padding, or both may be present);
per-sequence tensors are ``[B]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tether.losses import kl_penalty, masked_mean, masked_var


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16).

    delta_t = r_t + gamma V_{t+1} - V_t and A_t = delta_t + gamma lam A_{t+1},
    computed backwards over T and vectorised over B. Masked positions are
    skipped: they get advantage and return 0 and do not break the chain, so
    "next" means the next unmasked token of the row; after the last unmasked
    token the value bootstraps with 0 (the episode ends with the response).
    Returns ``(advantages, returns)``, both [B, T], returns = advantages + values.
    """
    if not rewards.shape == values.shape == mask.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and "
                         f"mask {tuple(mask.shape)} must have the same [B, T] shape")
    valid = mask.bool()  # [B, T]
    dtype = torch.promote_types(rewards.dtype, values.dtype)
    rewards = rewards.to(dtype)
    values = values.to(dtype)
    zero = torch.zeros(rewards.shape[0], dtype=dtype, device=rewards.device)  # [B]
    next_value, next_adv = zero, zero  # [B], [B]
    advantages_reversed = []
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # [B]
        adv_t = delta + gamma * lam * next_adv  # [B]
        m = valid[:, t]  # [B]
        # torch.where, not arithmetic with the mask: NaN padding must not leak.
        advantages_reversed.append(torch.where(m, adv_t, zero))
        next_value = torch.where(m, values[:, t], next_value)
        next_adv = torch.where(m, adv_t, next_adv)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)  # [B, T]
    returns = torch.where(valid, advantages + values, torch.zeros_like(advantages))  # [B, T]
    return advantages, returns


@torch.no_grad()
def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Scale ``x`` to mean 0 and variance 1 over its unmasked entries; masked entries -> 0.

    Statistics come from unmasked entries only, with the population variance
    as in lm-human-preferences' ``whiten`` (Ziegler et al. 2019, which uses
    ``tf.nn.moments``). ``shift_mean=False`` adds the mean back after scaling,
    as that code does for rewards, so only the scale changes.
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask, unbiased=False)
    out = (x - mean) * torch.rsqrt(var + eps)  # [B, T]
    if not shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, torch.zeros_like(out))


@torch.no_grad()
def kl_shaped_rewards(scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor,
                      kl_coef: float | Tensor, estimator: str = "k1") -> tuple[Tensor, Tensor]:
    """Per-token rewards for PPO: ``-kl_coef * kl`` on every response token, plus the score at the end.

    R(x, y) = r(x, y) - beta log(pi(y|x) / pi_ref(y|x)) (Ziegler et al. 2019,
    sec. 2.2; Stiennon et al. 2020, eq. 1), spread over tokens: the per-token
    KL estimate is charged where it arises and the sequence score ``scores``
    [B] lands on the last unmasked token of each row. Returns
    ``(rewards [B, T], kl [B, T])`` with 0 on masked positions.
    """
    if logprobs.shape != mask.shape or ref_logprobs.shape != mask.shape:
        raise ValueError("logprobs, ref_logprobs and mask must have the same [B, T] shape")
    if scores.shape != mask.shape[:1]:
        raise ValueError(f"scores must be [B] = [{mask.shape[0]}], got {tuple(scores.shape)}")
    valid = mask.bool()  # [B, T]
    has_tokens = valid.any(-1)  # [B]
    if not bool(has_tokens.all()):
        row = int((~has_tokens).nonzero()[0])
        raise ValueError(f"row {row} has no response token to put its score on")
    kl = kl_penalty(logprobs, ref_logprobs, estimator)  # [B, T]
    kl = torch.where(valid, kl, torch.zeros_like(kl))
    rewards = -kl_coef * kl  # [B, T]
    # Last unmasked index per row: the first True when scanning from the right.
    T = mask.shape[1]
    last = T - 1 - valid.flip(-1).to(torch.int8).argmax(-1)  # [B]
    rewards[torch.arange(mask.shape[0], device=mask.device), last] += scores.to(rewards.dtype)
    return rewards, kl


def _groups(rewards: Tensor, group_size: int, min_size: int) -> Tensor:
    """View ``rewards`` [B] as [B / group_size, group_size], checking sizes."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {tuple(rewards.shape)}")
    if group_size < min_size:
        raise ValueError(f"group_size must be >= {min_size}, got {group_size}")
    if rewards.shape[0] % group_size:
        raise ValueError(f"batch of {rewards.shape[0]} rewards is not divisible by "
                         f"group_size {group_size}")
    return rewards.detach().view(-1, group_size)


def group_normalize(rewards: Tensor, group_size: int, scale: bool = True,
                    eps: float = 1e-6) -> Tensor:
    """Group-relative advantages [B]: (r - group mean) / (group std + eps).

    GRPO's outcome supervision (Shao et al. 2024, sec. 4.1.2). ``rewards`` holds
    consecutive groups of ``group_size`` responses to one prompt. The std is
    the unbiased sample std (needs group_size >= 2). ``scale=False`` keeps
    only the mean subtraction, Dr.GRPO's fix for the difficulty bias of
    dividing by the std (Liu et al. 2025).
    """
    g = _groups(rewards, group_size, min_size=2)  # [N, G]
    centred = g - g.mean(dim=1, keepdim=True)  # [N, G]
    if scale:
        centred = centred / (g.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)  # [B]


def rloo(rewards: Tensor, group_size: int) -> Tensor:
    """REINFORCE leave-one-out advantages [B]: r_i minus the mean of the other k - 1 rewards.

    Ahmadian et al. 2024 ("Back to Basics", eq. 5). Equals k / (k - 1) times
    (r_i - group mean). ``rewards`` holds consecutive groups of ``group_size``.
    """
    g = _groups(rewards, group_size, min_size=2)  # [N, k]
    others_mean = (g.sum(dim=1, keepdim=True) - g) / (group_size - 1)  # [N, k]
    return (g - others_mean).reshape(-1)  # [B]


class FixedKLController:
    """A constant KL coefficient, with the same interface as :class:`AdaptiveKLController`."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Keep the coefficient; return it."""
        return self.value


class AdaptiveKLController:
    """Adapt the KL coefficient towards a target KL (Ziegler et al. 2019, sec. 2.2).

    e = clip(KL / target - 1, -0.2, 0.2); beta <- beta * (1 + e * n_steps / horizon).
    KL above target raises beta (pulls the policy back), below lowers it.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError(f"target and horizon must be > 0, got {target} and {horizon}")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move ``value`` by the clipped proportional error; return the new value.

        ``n_steps`` is the number of samples (episodes) since the last update,
        as in the paper's horizon of 10k samples.
        """
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value
