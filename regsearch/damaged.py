"""A results folder's files read back whole, or refused in one line that names the file and what to do.

regsearch writes every file atomically (:mod:`regsearch.atomic`), so a kill
never leaves half a file; a file can still be damaged from outside (a copy
cut short, a sync conflict, a disk error, a hand edit). Reading one then
raises :class:`DamagedFileError` instead of a parser's traceback, or worse, a
truncated table read as if it were whole. Only the standard library is
imported: the CLI imports this.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["RETRAINED", "REWRITTEN", "DamagedFileError", "check_table", "read_json", "read_table"]

#: What to do about a damaged file that a search writes anew (the report's files, the definition's copy, the models).
REWRITTEN = "restore it (from git or a backup) or run the search again, which resumes and writes it anew"
#: What to do about a damaged file of the tuner's state (a trial's runs): the trial is trained again.
RETRAINED = "run the search again: it trains that trial again and keeps the others"


class DamagedFileError(RuntimeError):
    """A file of a results folder cannot be read back; the message is one line: the file, why, what to do.

    The CLI prints it and exits with code 2.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, remedy: str) -> None:
        self.path, self.problem, self.remedy = Path(path), problem, remedy
        super().__init__(f"{path} is damaged ({problem}); {remedy}")


def _text(path: Path, remedy: str) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DamagedFileError(path, "a folder, not a file", remedy) from None
    if not data.strip():
        raise DamagedFileError(path, "empty" if not data else "blank", remedy)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DamagedFileError(path, f"not UTF-8 text at byte {error.start}", remedy) from None


def read_json(path: str | os.PathLike[str], remedy: str) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        DamagedFileError: The file is empty, not UTF-8, not valid JSON (cut short included) or not an object.
        FileNotFoundError: It does not exist (callers decide whether that is damage).
    """
    path = Path(path)
    text = _text(path, remedy)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        cut = error.pos >= len(text.rstrip())
        problem = "cut short" if cut else f"not valid JSON at line {error.lineno} column {error.colno}"
        raise DamagedFileError(path, problem, remedy) from None
    if not isinstance(value, dict):
        raise DamagedFileError(path, f"a JSON {type(value).__name__} where an object belongs", remedy)
    return value


def check_table(path: str | os.PathLike[str], remedy: str) -> int:
    """Checks that ``path`` is a whole CSV table as regsearch writes it; returns its number of rows.

    Every table regsearch writes ends with a newline and has as many fields
    on each row as in its header: a last line cut short fails one or both
    (pandas would read it as a row of missing values).

    Raises:
        DamagedFileError: Empty, not UTF-8, cut short, or a row of another width than the header.
    """
    path = Path(path)
    text = _text(path, remedy)
    if not text.endswith("\n"):
        raise DamagedFileError(path, "its last line is cut short", remedy)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        rows = 0
        for row in reader:
            rows += 1
            if len(row) != len(header):
                fields = f"{len(row)} field" + ("" if len(row) == 1 else "s")
                raise DamagedFileError(path, f"line {reader.line_num} has {fields}, its header {len(header)}", remedy)
    except csv.Error as error:
        raise DamagedFileError(path, f"not a CSV table at line {reader.line_num}: {error}", remedy) from None
    return rows


def read_table(path: str | os.PathLike[str], remedy: str, **read_csv: Any) -> Any:
    """``pandas.read_csv(path)`` after :func:`check_table`: a pandas DataFrame of a whole table."""
    import pandas as pd

    check_table(path, remedy)
    return pd.read_csv(path, **read_csv)
