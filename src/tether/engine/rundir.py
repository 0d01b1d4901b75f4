"""The run directory of a stage (DESIGN.md, "A run directory") and its checkpoints.

    OUT/config.yaml  metrics.jsonl  summary.json  checkpoints/step-NNNNNN/  model/  tb/

Only rank 0 calls the writing functions here. A checkpoint is written into
``checkpoints/.tmp-step-NNNNNN-PID`` and renamed to ``step-NNNNNN`` when whole,
so a kill at any moment leaves either the complete folder or none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from tether.errors import TetherError

# Files and folders a stage writes into its run directory.
RUN_ENTRIES = ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "model",
               "tb", "samples.jsonl")
_STEP_DIR = re.compile(r"^step-(\d{6,})$")


class RunDirError(TetherError):
    """The run directory cannot be used as asked."""



def checkpoint_name(step: int) -> str:
    """``step-000042``."""
    return f"step-{step:06d}"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``out/checkpoints``, oldest first."""
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / "meta.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(out)
    return found[-1][1] if found else None


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> str | None:
    """Why writing into ``out`` must be refused, or None when it is fine (reads only)."""
    out = Path(out)
    if resume or overwrite or not out.exists():
        return None
    if not out.is_dir():
        return f"run.out: {out} exists and is not a directory"
    if (out / "summary.json").exists():
        return (f"run.out: {out} already holds a finished run; pass run.overwrite=true to "
                f"replace it or run.resume=true (--resume) to continue it")
    if list_checkpoints(out):
        return (f"run.out: {out} holds an unfinished run with checkpoints; pass --resume "
                f"(run.resume=true) to continue it or run.overwrite=true to replace it")
    return None


def clear_run_dir(out: Path) -> None:
    """Remove what an earlier run of a stage wrote into ``out`` (and nothing else)."""
    for name in RUN_ENTRIES:
        p = Path(out) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_checkpoint(tmp: Path, out: Path, step: int, keep_last: int) -> Path:
    """Rename the filled temporary folder ``tmp`` to ``checkpoints/step-N``; keep the last K.

    ``tmp`` must contain ``meta.json`` (the completeness marker). An existing
    checkpoint of the same step is replaced.
    """
    root = Path(out) / "checkpoints"
    for f in tmp.iterdir():  # data on disk before the rename makes it visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = root / checkpoint_name(step)
    if final.exists():
        old = root / f".old-{final.name}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    _fsync_dir(root)
    for _, p in list_checkpoints(out)[:-keep_last]:
        shutil.rmtree(p)
    return final


def new_checkpoint_tmp(out: Path, step: int) -> Path:
    """A fresh temporary folder for the checkpoint of ``step``."""
    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def remove_stale_tmp(out: Path) -> None:
    """Delete temporary checkpoint folders left by a killed run."""
    root = Path(out) / "checkpoints"
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith((".tmp-", ".old-")) and p.is_dir():
                shutil.rmtree(p)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines of ``metrics.jsonl`` logged after ``last_step`` (a resumed run relogs them)."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if isinstance(rec, dict) and int(rec.get("step", 0)) <= last_step:
            kept.append(line)
    from tether.config import atomic_write_text

    atomic_write_text(path, "".join(x + "\n" for x in kept))
