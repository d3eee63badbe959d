"""Secrets never reach the archive, the console or a log: every such text passes `redact`.

What counts as a secret:
- values registered at run time (`register`): the LLM backend's API key;
- values of environment variables whose name says they are one: OPENAI_API_KEY, AUTOREC_*_KEY
  and any *_KEY, *_TOKEN, *_SECRET, *_PASSWORD (six characters or more, so that a stray short
  value does not blank out ordinary text);
- credentials written into text: the user:password part of a URL (https://user:pass@host), the
  value of key/token/secret/password query parameters (?api_key=...), Authorization header
  values (Bearer/Basic/Token ...), and OpenAI-style keys (sk-...).

Each is replaced by `***`. The archive applies `redact` to everything it stores (errors, prompts,
responses, rationales, a run's config and environment), the LLM backend to its error messages,
and `protect_logs` to every log record of the process.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
MIN_SECRET_CHARS = 6
_SECRET_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)
_PATTERNS = [
    # scheme://user:password@host and scheme://token@host
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"<>]+@"), rf"\1{MASK}@"),
    # ?api_key=...&token=... (also key=, access_token=, secret=, password=, sig=)
    (re.compile(r"([?&;](?:[A-Za-z_-]*(?:key|token|secret|password|passwd|sig|signature))=)"
                r"[^&;#\s'\"<>]+", re.IGNORECASE), rf"\1{MASK}"),
    # Authorization: Bearer ... / Basic ... / Token ...
    (re.compile(r"\b(Bearer|Basic|Token)(\s+|%20)[A-Za-z0-9._~+/=:-]{6,}"), rf"\1\2{MASK}"),
    # OpenAI-style keys wherever they appear
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), f"sk-{MASK}"),
]

_registered: set[str] = set()


def register(*values: str | None) -> None:
    """Treat these values as secrets from now on (in this process), and keep them out of logs."""
    for value in values:
        if value and len(value) >= MIN_SECRET_CHARS:
            _registered.add(value)
    protect_logs()


def known_secrets() -> list[str]:
    """Registered values and secret-named environment variables, longest first (so a secret
    that contains another is masked whole)."""
    found = set(_registered)
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET_CHARS:
            found.add(value)
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with every known secret and credential-shaped substring replaced by ***."""
    if not isinstance(text, str) or not text:
        return text
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_data(value: Any) -> Any:
    """`redact` applied to every string inside JSON-like data (keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


_log_factory_installed = False


def protect_logs() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    global _log_factory_installed
    if _log_factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    logging.setLogRecordFactory(factory)
    _log_factory_installed = True
