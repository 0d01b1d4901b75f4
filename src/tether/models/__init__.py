"""Models: load and save Hugging Face models, the tiny-model factory, tokenizer
training, LoRA, reward and value heads, per-token log-probs and generation.

Import from the submodules (``tether.models.logprobs``, ...); this package
imports nothing itself, so ``import tether`` stays light.
"""
