"""Reward sources for the RL stages, and the transforms put on them.

    from tether.rewards import RewardConfig, load_reward_source
    reward = load_reward_source(cfg.reward, reference=(prompts, ref_responses))
    scores = reward.score(prompts, responses)   # float32 tensor [B] on the CPU

Heavy parts (transformers, the world) are imported where they are used.
"""

from tether.rewards.base import RewardSource, as_scores
from tether.rewards.config import RewardConfig, load_reward_source
from tether.rewards.ensemble import EnsembleReward, combine
from tether.rewards.function import FunctionReward
from tether.rewards.gold import GoldReward
from tether.rewards.model import ModelReward
from tether.rewards.transforms import Cap, Normalize, Transformed, transformed

__all__ = ["Cap", "EnsembleReward", "FunctionReward", "GoldReward", "ModelReward", "Normalize",
           "RewardConfig", "RewardSource", "Transformed", "as_scores", "combine",
           "load_reward_source", "transformed"]
