"""Downloads with a checksum into a per-user cache folder, never into the repository.

The folder is `$AUTOREC_CACHE` when set, else `~/.cache/autorec`. A file is written under a
temporary name and renamed only after its size and sha256 match, so an interrupted or tampered
download never looks complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from autorec.errors import DatasetError

CACHE_ENV = "AUTOREC_CACHE"
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The cache folder (created on first use)."""
    root = os.environ.get(CACHE_ENV)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "autorec"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, destination: Path, timeout: float = 60.0) -> None:
    """Copy `url` to `destination`. Tests replace this function to stay offline."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)


def download(url: str, filename: str, sha256: str | None, hint: str = "") -> Path:
    """The cached copy of `url` as `cache_dir()/filename`, downloading it when absent.

    `sha256=None` skips the checksum (for sources whose digest is not pinned). A download that
    fails, or whose digest differs, raises DatasetError; `hint` is appended to its message.
    """
    target = cache_dir() / filename
    if target.exists() and (sha256 is None or sha256_of(target) == sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = f"; {hint}" if hint else ""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(handle)
    partial = Path(temporary)
    try:
        try:
            fetch(url, partial)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DatasetError(f"could not download {url}: {reason}{suffix}") from error
        if sha256 is not None:
            actual = sha256_of(partial)
            if actual != sha256:
                raise DatasetError(
                    f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}{suffix}"
                )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def extract(archive: Path, members: list[str], destination: Path) -> None:
    """Extract the named members of a zip file under `destination`, keeping their paths."""
    destination = destination.resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            names = set(bundle.namelist())
            for member in members:
                if member not in names:
                    raise DatasetError(f"{archive} lacks {member}; delete it and retry")
                path = (destination / member).resolve()
                if destination not in path.parents:
                    raise DatasetError(f"{archive} holds an unsafe path {member}")
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f".{path.name}.partial")
                with bundle.open(member) as source, open(partial, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                partial.replace(path)  # a complete file or none: loaders test for existence
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{archive} is not a valid zip file; delete it and retry") from error
