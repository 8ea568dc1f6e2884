"""Finding, opening and reading source files, with errors that say which file, which line and what to do.

Reading is bounded: a line longer than ``MAX_LINE_CHARS`` is skipped and reported (never held whole), and a
record nested deeper than ``MAX_DEPTH`` is refused before a parser can recurse on it, so one hostile line
is quarantined while the rest of the file is read.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import re
import shutil
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sid_platform.settings import DATA_DIR_ENV


class DataNotFoundError(FileNotFoundError):
    """A source file is missing; the message lists every place that was searched."""


def find_file(names: Sequence[str], folders: Sequence[Path], what: str) -> Path:
    """First existing ``folder/name`` (plain or ``.gz``); otherwise a ``DataNotFoundError`` that helps."""
    tried: list[Path] = []
    for folder in folders:
        for name in names:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
                tried.append(candidate)
    listing = "\n  ".join(str(p) for p in tried)
    raise DataNotFoundError(
        f"{what}: none of these files exist:\n  {listing}\n"
        f"Point the platform at the folder that holds them with the {DATA_DIR_ENV} environment variable "
        "or the `data_dir` field of the `dataset` resource config."
    )


# Longest line read (characters); the longest real Amazon metadata lines are a few tens of thousands.
MAX_LINE_CHARS = 1_000_000
# Deepest nesting of brackets in one record; real records nest four levels at most.
MAX_DEPTH = 64


class SourceError(ValueError):
    """A source file cannot be read as a whole; the message names the file, the line where there is one, and
    what to do."""


@dataclass(frozen=True)
class LongLine:
    """A line over ``MAX_LINE_CHARS``: its length and first characters, enough to quarantine it."""

    chars: int
    head: str


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115 - caller closes


def open_text(path: Path, newline: str | None = None) -> io.TextIOWrapper:
    """Open a UTF-8 text file, transparently gunzipping ``.gz`` and dropping a byte-order mark; universal
    newlines (the default) handle CRLF sources, ``newline=""`` leaves them to the csv module."""
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline=newline)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn what breaks a whole file (bytes that are not UTF-8, a damaged gzip stream) into a ``SourceError``
    naming the file, the line and the fix, instead of a codec or zlib traceback."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise SourceError(_not_utf8(path)) from err
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise SourceError(f"{path}: not a complete gzip file ({err}); download or compress it again") from err


def _not_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 is (the decoder reads ahead, so its own position is no line)."""
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return (
                    f"{path}, line {number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                    "save the file as UTF-8, e.g. iconv -f latin1 -t utf-8"
                )
    return f"{path}: not UTF-8 text; save the file as UTF-8, e.g. iconv -f latin1 -t utf-8"


def numbered_lines(path: Path, max_chars: int = MAX_LINE_CHARS) -> Iterator[tuple[int, str | LongLine]]:
    """(1-based line number, line without its newline), skipping blank lines; a line over ``max_chars`` comes
    as a ``LongLine`` (read in pieces and let go), for the caller to quarantine."""
    with reading(path), open_text(path) as handle:
        number = 0
        while line := handle.readline(max_chars + 1):
            number += 1
            if len(line) > max_chars and not line.endswith("\n"):
                chars = len(line)
                while piece := handle.readline(1 << 20):
                    chars += len(piece.rstrip("\n"))
                    if piece.endswith("\n"):
                        break
                yield number, LongLine(chars, line[:500])
                continue
            line = line.rstrip("\n")
            if line.strip():
                yield number, line


def too_long(line: LongLine, limit: int = MAX_LINE_CHARS) -> str:
    """The quarantine reason for a ``LongLine``."""
    return f"line is {line.chars:,} characters, over the {limit:,} limit"


_QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
_BRACKET = re.compile(r"[\[\]{}()]")


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether brackets nest more than ``limit`` deep outside quoted strings; checked before parsing, since
    ``json`` and ``ast`` recurse once per level."""
    if sum(text.count(c) for c in "[{(") <= limit:  # the common case, counted in C
        return False
    depth = 0
    for match in _BRACKET.finditer(_QUOTED.sub("", text)):
        depth = depth + 1 if match.group() in "[{(" else max(depth - 1, 0)
        if depth > limit:
            return True
    return False


def parse_object(line: str, python_literals: bool = False) -> dict:
    """One record: a JSON object, or (``python_literals``) a Python dict literal as in Amazon's raw metadata,
    parsed with ``ast.literal_eval``, which cannot run code. Nesting deeper than ``MAX_DEPTH`` and anything
    else that is not an object raise ``ValueError`` (a parser's recursion never escapes)."""
    if too_deep(line):
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    try:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if not python_literals:
                raise ValueError(f"not JSON: {err.msg} at column {err.colno}") from err
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError, TypeError) as literal_err:
                raise ValueError(f"neither JSON nor a Python literal ({literal_err.__class__.__name__})") from err
    except (RecursionError, MemoryError) as err:
        raise ValueError(f"too deep or too large to parse ({err.__class__.__name__})") from err
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    return record


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 differs from the one in config; the file is not kept."""


def download(url: str, sha256: str, dest: Path, timeout_s: float = 120.0) -> Path:
    """Fetch ``url`` to ``dest`` unless a file with the right checksum is already there.

    The download goes to a temporary file that only replaces ``dest`` once its checksum matches,
    so an interrupted or corrupted transfer never leaves a half file behind.
    """
    if dest.is_file() and sha256_of(dest) == sha256.lower():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                shutil.copyfileobj(response, tmp)
        except OSError:  # URLError, HTTPError, timeouts and disk errors alike
            tmp_path.unlink(missing_ok=True)
            raise
    actual = sha256_of(tmp_path)
    if actual != sha256.lower():
        tmp_path.unlink(missing_ok=True)
        raise ChecksumError(f"{url}: SHA-256 is {actual}, config expects {sha256}; file not kept")
    tmp_path.replace(dest)
    return dest
