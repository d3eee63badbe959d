"""Library warnings of a search go to a log file beside the archive, not over the progress bar.

transformers, peft, optuna and torch warn about deprecations and defaults while a search runs;
a user wants the progress bar and the result on screen and the warnings on file:
`autorec-logs/<run name>.log` in the archive's folder. Until the run has a name (start-up),
records wait in memory.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import warnings
from pathlib import Path

# Loggers of the libraries a search imports; their records are diverted while a search runs.
LIBRARY_LOGGERS = ("py.warnings", "transformers", "peft", "optuna", "torch", "huggingface_hub")


class RunLog:
    def __init__(self, archive_url: str):
        self.folder = _archive_folder(archive_url) / "autorec-logs"
        self.path: Path | None = None
        self._memory = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1)
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []

    def __enter__(self) -> "RunLog":
        _configure_transformers_logging()
        logging.captureWarnings(True)
        warnings.simplefilter("default")
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, list(logger.handlers), logger.propagate))
            logger.handlers = [self._memory]
            logger.propagate = False
        return self

    def attach(self, run_name: str) -> None:
        """Start writing to the run's file, with what was held back since start-up."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_name)[:120] or "run"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{safe}.log"
        target = logging.FileHandler(self.path, delay=True)
        target.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        self._memory.setTarget(target)
        self._memory.flush()

    def __exit__(self, *exc: object) -> None:
        self._memory.flush()
        self._memory.close()
        for logger, handlers, propagate in self._saved:
            logger.handlers, logger.propagate = handlers, propagate
        logging.captureWarnings(False)


def _configure_transformers_logging() -> None:
    """transformers adds its own stderr handler the first time it logs; have it do so now, so
    that the handler is replaced below rather than added after (0.6 s of import)."""
    try:
        import transformers.utils.logging  # noqa: F401
    except ImportError:
        pass


def _archive_folder(url: str) -> Path:
    """The folder of a SQLite archive; the working directory for a server database."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).resolve().parent
    if "://" in url:
        return Path.cwd()
    return Path(url).resolve().parent
