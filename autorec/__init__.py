"""autorec: agent-driven AutoML and autotuning for recommender models.

`autorec.search(...)`, `autorec.open_archive(url)`, `autorec.train(...)` and
`autorec.explain_candidate(id)` are the Python API
(autorec/api.py); the `autorec` command line is a thin layer over them.
"""

from typing import Any

from autorec.errors import AutorecError, ConfigError

__version__ = "0.1.0"
__all__ = ["AutorecError", "ConfigError", "__version__", "explain_candidate", "open_archive",
           "search", "train"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import autorec` in a Ray worker costs nothing: the API pulls in the archive,
    # the engine and the proposers.
    if name in ("search", "open_archive", "train", "explain_candidate"):
        from autorec import api

        return getattr(api, name)
    raise AttributeError(f"module 'autorec' has no attribute {name!r}")
