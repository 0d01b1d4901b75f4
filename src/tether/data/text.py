"""Pretraining corpora: plain-text files, record files with a ``text`` column, and
sequence packing.

A corpus is a path, a glob (``data/*.txt``) or a list of them. Plain-text files
hold one document per line (``document="line"``, empty lines skipped) or one
per file (``document="file"``). ``.jsonl``, ``.json``, ``.parquet`` files and
``datasets`` directories are read as records and their ``text`` field is the
document.

Packing (as GPT-2/nanoGPT train): every document is tokenized (with the
tokenizer's bos, if it adds one) and followed by eos; all are concatenated and
cut into blocks of ``seq_len`` tokens. The tail shorter than a block is
dropped. Attention crosses document boundaries inside a block, as in those
references; the eos between documents tells the model where one ends.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tether.data.io import iter_records
from tether.errors import DataError

RECORD_SUFFIXES = {".jsonl", ".json", ".parquet"}


def corpus_files(spec: str | os.PathLike[str] | list[str]) -> list[Path]:
    """Expand a path, a glob or a list of them to existing paths (sorted within a glob)."""
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        raise DataError("data.path", "no corpus file given")
    files: list[Path] = []
    for item in items:
        s = str(item)
        if glob.has_magic(s):
            matched = sorted(glob.glob(s))
            if not matched:
                raise DataError(s, "no file matches this pattern")
            files += [Path(m) for m in matched]
        else:
            p = Path(s)
            if not p.exists():
                raise DataError(p, "file not found")
            files.append(p)
    return files


def _is_records(p: Path) -> bool:
    return p.is_dir() or p.suffix in RECORD_SUFFIXES


def read_documents(spec: str | os.PathLike[str] | list[str], document: str = "line",
                   text_field: str = "text") -> list[str]:
    """All non-empty documents of a corpus, in file order."""
    docs: list[str] = []
    for p in corpus_files(spec):
        if _is_records(p):
            for line, rec in iter_records(p):
                text = rec.get(text_field)
                if text is None:
                    raise DataError(p, "missing", line=line, field=text_field)
                if not isinstance(text, str):
                    raise DataError(p, f"expected a string, got {type(text).__name__}",
                                    line=line, field=text_field)
                if text.strip():
                    docs.append(text)
            continue
        try:
            content = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            line = p.read_bytes()[:e.start].count(b"\n") + 1
            raise DataError(p, "not UTF-8 text", line=line) from None
        except IsADirectoryError:
            raise DataError(p, "is a directory, not a text file or datasets directory") from None
        if document == "file":
            if content.strip():
                docs.append(content)
        else:
            docs += [line for line in content.splitlines() if line.strip()]
    if not docs:
        raise DataError(", ".join(str(p) for p in corpus_files(spec)), "no non-empty document")
    return docs


@dataclass
class PackedCorpus:
    """Token blocks ``[N, seq_len]`` and how they were made."""

    blocks: torch.Tensor  # [N, seq_len] int64
    documents: int
    tokens: int  # tokens in the concatenation (eos included)
    dropped_tokens: int  # the tail that did not fill a block


def pack_documents(token_lists: list[list[int]], seq_len: int, eos_id: int | None,
                   source: str = "corpus") -> PackedCorpus:
    """Concatenate documents (each followed by ``eos_id``) and cut into ``seq_len`` blocks."""
    if seq_len < 2:
        raise DataError(source, f"seq_len must be at least 2 (got {seq_len})")
    stream: list[int] = []
    for ids in token_lists:
        stream += ids
        if eos_id is not None:
            stream.append(eos_id)
    n = len(stream) // seq_len
    if n == 0:
        raise DataError(source, f"{len(stream)} tokens are fewer than one block of "
                                f"data.seq_len={seq_len}")
    blocks = torch.tensor(stream[:n * seq_len], dtype=torch.long).view(n, seq_len)  # [N, L]
    return PackedCorpus(blocks, len(token_lists), len(stream), len(stream) - n * seq_len)


def tokenize_and_pack(docs: list[str], tokenizer: Any, seq_len: int,
                      source: str = "corpus") -> PackedCorpus:
    """Tokenize ``docs`` (with the tokenizer's special tokens, e.g. bos) and pack them."""
    ids = tokenizer(docs, add_special_tokens=True)["input_ids"]
    return pack_documents(ids, seq_len, tokenizer.eos_token_id, source)
