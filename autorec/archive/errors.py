"""Errors the archive raises on purpose: AutorecErrors, so the CLI prints them as one line."""

from autorec.errors import AutorecError


class ArchiveError(AutorecError):
    """An archive that cannot be opened or used: missing, not SQLite, written by a newer autorec."""


class NotFoundError(ArchiveError):
    """A run, candidate or evaluation that the archive does not hold."""

    def __init__(self, kind: str, key: object, where: str, hint: str = ""):
        self.kind, self.key = kind, key
        super().__init__(f"no {kind} {key!r} in {where}" + (f"; {hint}" if hint else ""))
