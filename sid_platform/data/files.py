"""Finding and opening source files, with errors that say where we looked and how to point elsewhere."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
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


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently gunzipping ``.gz``; universal newlines handle CRLF sources."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline=None)
    return open(path, encoding="utf-8", newline=None)  # noqa: SIM115 - caller closes


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline), skipping blank lines."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if line.strip():
                yield number, line


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
