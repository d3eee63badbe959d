"""The one error `autorec explain` raises on purpose (printed as one line, exit code 2)."""

from autorec.errors import AutorecError


class ExplainError(AutorecError):
    """A candidate or dataset that RecSAE cannot explain: not sequential, failed, unnamed items."""
