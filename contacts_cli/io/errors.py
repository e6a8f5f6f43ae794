"""The io layer's errors: one base, :class:`ContactsIOError`, for everything it raises on purpose.

A problem with one record is not an error here: readers yield it as a rejected
:class:`~contacts_cli.io.rows.ParsedRow` and carry on. These are for what stops a read.
"""

from __future__ import annotations

import os


class ContactsIOError(Exception):
    """Base of every error the io layer raises on purpose."""


class ImportFileError(ContactsIOError):
    """The file as a whole cannot be read (unknown header, broken JSON array, bad format)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


class UnreadableFileError(ContactsIOError):
    """The file cannot be opened for reading: it is missing, a directory, or not permitted."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read {self.path}: {reason}")


class JsonTooDeep(ContactsIOError, ValueError):
    """A JSON text nests arrays and objects deeper than allowed (decoding it would recurse).

    Also a ``ValueError``, as ``json.JSONDecodeError`` is, so code that reports malformed
    JSON reports this too.
    """

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        super().__init__(f"nested deeper than {max_depth} levels")
