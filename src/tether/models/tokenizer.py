"""Byte-level BPE tokenizers trained from text, with a chat template.

The tiny models Tether builds from scratch need a tokenizer that matches their
corpus. :func:`train_tokenizer` trains one with the ``tokenizers`` library and
wraps it as a ``transformers`` fast tokenizer, so it saves, loads and applies
chat templates like any Hugging Face tokenizer.

Conventions (the same for every tiny model):

- Special tokens ``<|pad|>`` (id 0), ``<|bos|>`` (1), ``<|eos|>`` (2) and the
  role markers ``<|system|>``, ``<|user|>``, ``<|assistant|>``.
- ``tokenizer(text)`` puts ``<|bos|>`` in front (Llama style) and adds no eos;
  append ``tokenizer.eos_token`` yourself where a document ends.
- A chat renders as ``<|bos|><|user|>\\nHi<|eos|><|assistant|>\\nHello<|eos|>``:
  every turn, the assistant's included, ends with the eos token, so generation
  stops at the end of the assistant turn. The template already holds the bos
  token, so tokenise rendered chats with ``add_special_tokens=False``
  (``apply_chat_template(..., tokenize=True)`` does this for you). The assistant
  content is wrapped in ``{% generation %}`` so
  ``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks the
  tokens SFT trains on.
- Padding side: the tokenizer pads on the right (what training collators want;
  :func:`tether.models.logprobs.sequence_token_logprobs` gives the same numbers
  for either side). :func:`tether.models.generation.sample` left-pads prompts
  itself, whatever the tokenizer's ``padding_side``, so any user tokenizer works.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from transformers import PreTrainedTokenizerFast

from tether.errors import ConfigError, DataError

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SPECIAL_TOKENS = [PAD, BOS, EOS, *ROLE_TOKENS]  # ids 0..5 in this order
BYTE_ALPHABET = 256  # byte-level BPE starts from all 256 bytes

# Each turn: role marker, newline, content, eos. Unknown roles are an error, not
# silently rendered. The assistant turn is wrapped in {% generation %} so that
# return_assistant_tokens_mask=True marks its content and closing eos.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown chat role: ' + message['role']) }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>\n{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{% else %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _non_empty(texts: Iterable[str], counter: list[int]) -> Iterator[str]:
    """Yield the non-empty strings of ``texts``, counting them in ``counter[0]``."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError("tokenizer corpus", f"expected a string, got {type(text).__name__}",
                            line=i + 1)
        if text:
            counter[0] += 1
            yield text


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024,
                    min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` with Tether's special tokens and chat template.

    ``vocab_size`` counts the 256 bytes and the 6 special tokens; merges fill the
    rest (fewer when the corpus has fewer pairs seen ``min_frequency`` times).
    Deterministic for the same texts and settings.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    minimum = BYTE_ALPHABET + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ConfigError(f"vocab_size: {vocab_size} is below {minimum} "
                          f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens)")
    if min_frequency < 1:
        raise ConfigError(f"min_frequency: must be at least 1 (got {min_frequency})")

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    count = [0]
    bpe.train_from_iterator(_non_empty(texts, count), trainer)
    if count[0] == 0:
        raise DataError("tokenizer corpus", "no non-empty texts to train on")
    # Llama style: a lone text gets <|bos|> in front, no eos.
    bos_id = bpe.token_to_id(BOS)
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])

    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        extra_special_tokens=ROLE_TOKENS, chat_template=CHAT_TEMPLATE,
        padding_side="right", model_max_length=512)
