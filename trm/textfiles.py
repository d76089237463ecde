"""Reading users' text files (recipes, CSV and JSON sources) as UTF-8, with one clear line when they are not.

Python's own decoding error is a traceback that names neither the file nor where in it the bad byte is; here it
becomes ``data/train.csv: not UTF-8 text: byte 0xe9 at byte offset 1234 (line 17) ...``. A UTF-8 byte-order mark,
which spreadsheet programs on Windows write, is accepted and dropped.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import BinaryIO, Iterator

from trm.errors import UserError

__all__ = ["decode_utf8", "read_utf8", "utf8_lines", "open_utf8_lines", "csv_records"]


def _not_utf8(path: Path | str, data: bytes, error: UnicodeDecodeError, base: int = 0, line: int | None = None) -> UserError:
    offset = base + error.start
    if line is None:
        line = data.count(b"\n", 0, error.start) + 1
    bad = data[error.start:error.start + 1]
    return UserError(f"{path}: not UTF-8 text: byte 0x{bad.hex()} at byte offset {offset} (line {line}) "
                     f"({error.reason}); save the file as UTF-8")


def decode_utf8(data: bytes, path: Path | str) -> str:
    """``data`` (the bytes of the file ``path``) as text, a leading byte-order mark dropped."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(path, data[start:], error, base=start) from None


def _cannot_open(path: Path | str, what: str, exc: OSError) -> UserError:
    if isinstance(exc, FileNotFoundError):
        return UserError(f"{path}: {what} not found")
    if isinstance(exc, IsADirectoryError):
        return UserError(f"{path}: is a directory, expected a {what}")
    return UserError(f"{path}: cannot read {what}: {exc.strerror}")


def read_utf8(path: Path | str, what: str = "file") -> str:
    """The text of ``path``; :class:`UserError` naming the file when it is missing, unreadable or not UTF-8."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _cannot_open(path, what, exc) from None
    return decode_utf8(data, path)


def utf8_lines(handle: BinaryIO, path: Path | str) -> Iterator[str]:
    """The lines of a file opened in binary mode, decoded one at a time (large CSVs are never held whole).

    Line endings are kept, so the result can feed :func:`csv.reader` like a file opened with ``newline=""``.
    """
    offset = 0
    for number, raw in enumerate(handle, start=1):
        start = len(codecs.BOM_UTF8) if number == 1 and raw.startswith(codecs.BOM_UTF8) else 0
        try:
            yield raw[start:].decode("utf-8")
        except UnicodeDecodeError as error:
            raise _not_utf8(path, raw[start:], error, base=offset + start, line=number) from None
        offset += len(raw)


def open_utf8_lines(path: Path | str, what: str = "file") -> Iterator[str]:
    """:func:`utf8_lines` of ``path``, opened here; :class:`UserError` when it cannot be opened. The file is closed
    when the iterator is exhausted or garbage collected."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise _cannot_open(path, what, exc) from None

    def lines() -> Iterator[str]:
        with handle:
            yield from utf8_lines(handle, path)

    return lines()


def csv_records(path: Path | str, what: str = "CSV file") -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every record of the CSV file ``path``, its header included, read as UTF-8.

    A malformed record (a NUL byte, an unterminated quote running into a huge field) is a :class:`UserError`
    naming the file and line rather than :class:`csv.Error`'s bare message."""
    reader = csv.reader(open_utf8_lines(path, what))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UserError(f"{path}:{reader.line_num}: not a valid CSV record ({exc})") from None
        yield reader.line_num, row
