"""User-facing errors.

Anything a user can cause (a bad config key, a missing file, a malformed record,
a NaN loss that will not go away) raises a :class:`TetherError`. The CLI prints
its message as one line and exits with code 2; nothing else is caught there, so
a bug still shows its traceback.
"""

from __future__ import annotations


class TetherError(Exception):
    """An error caused by the user's input; shown as one line, exit code 2."""


class ConfigError(TetherError):
    """A config file or override is wrong: unknown key, bad type, bad value."""


class DataError(TetherError):
    """A data file or record is malformed.

    The message names the file, the line (1-based, where the format has lines)
    and the field, e.g. ``data/pairs.jsonl:17: field 'chosen': missing``.
    """

    def __init__(self, path: object, message: str, line: int | None = None,
                 field: str | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        what = f"field '{field}': {message}" if field else message
        super().__init__(f"{where}: {what}")
        self.path = path
        self.line = line
        self.field = field


class TrainingError(TetherError):
    """Training cannot go on (e.g. too many non-finite losses in a row)."""
