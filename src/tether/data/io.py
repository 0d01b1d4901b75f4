"""Read and write record files: JSONL, Parquet, or a ``datasets`` directory.

Readers yield ``(line, record)`` where ``line`` is the 1-based line of a JSONL
file (the row number + 1 elsewhere), so that a malformed record can be named as
``file:line`` in a :class:`~tether.errors.DataError`. Writers are atomic: the
file appears whole or not at all.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tether.errors import DataError


def iter_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, record)`` from a JSONL file, a Parquet file or a datasets directory."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, "file not found")
    if p.is_dir():
        yield from _iter_datasets_dir(p)
    elif p.suffix == ".parquet":
        yield from _iter_parquet(p)
    else:
        yield from _iter_jsonl(p)


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a file, as a list (see :func:`iter_records`)."""
    return [rec for _, rec in iter_records(path)]


def _iter_jsonl(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with p.open("r", encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(p, f"not valid JSON ({e.msg})", line=i) from None
            if not isinstance(rec, dict):
                raise DataError(p, f"expected a JSON object, got {type(rec).__name__}", line=i)
            yield i, rec


def _iter_parquet(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as e:  # pyarrow raises many types for a bad file
        raise DataError(p, f"not a readable Parquet file ({e})") from None
    for i, rec in enumerate(table.to_pylist(), start=1):
        yield i + 1, rec  # line 1 is the header of the table


def _iter_datasets_dir(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    from datasets import load_from_disk

    try:
        ds = load_from_disk(str(p))
    except Exception as e:
        raise DataError(p, f"not a datasets directory ({e})") from None
    if hasattr(ds, "keys"):  # a DatasetDict: take the train split, else the only one
        splits = list(ds.keys())
        ds = ds["train"] if "train" in splits else ds[splits[0]]
    for i, rec in enumerate(ds, start=1):
        yield i + 1, dict(rec)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    A crash or an exception inside the block leaves ``path`` as it was (absent or
    old) and removes the temporary file. The file gets the usual permissions
    (0666 less the umask), not mkstemp's 0600.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSONL atomically (temporary file, then rename); returns the count."""
    n = 0
    with atomic_file(path) as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record as a line (used for logs such as ``metrics.jsonl``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
