"""Generated kernels as modules: loaded with restricted builtins, kept by content hash.

A generated kernel that passed the gate is saved as `<cache>/kernels/<op>-<sha>.py` and named
`generated:<op>:<sha>`; that id is what `autorec export` writes into the `kernels` training
setting, and `resolve` (a dispatch variant resolver) loads it again for training. Loading always
repeats the static check and uses builtins whose `__import__` admits only the allow-listed
modules; the sandbox adds its audit hook on top.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from autorec.errors import ConfigError

PREFIX = "generated"


def variant_id(op: str, source: str) -> str:
    return f"{PREFIX}:{op}:{hashlib.sha256(source.encode()).hexdigest()[:16]}"


def saved_path(variant: str) -> Path:
    from autorec.data.cache import cache_dir

    _, op, digest = variant.split(":", 2)
    return cache_dir() / "kernels" / f"{op}-{digest}.py"


def save(op: str, source: str) -> str:
    """Keep a gated kernel's source for training; its variant id."""
    name = variant_id(op, source)
    path = saved_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(source)
    return name


def load_module_entry(source: str, spec: Any, folder: Path, module_name: str) -> Callable:
    """The entry function of `source`, imported from a file in `folder` (Triton reads a kernel's
    source with inspect) with restricted builtins."""
    from autorec.kernels.harness.static_check import (
        ALLOWED_MODULES,
        FORBIDDEN_BUILTINS,
        check_source,
    )

    checked = check_source(source, spec.signature)
    path = folder / f"{module_name}.py"
    if not path.exists() or path.read_text() != source:
        path.write_text(source)
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    safe = {k: v for k, v in vars(builtins).items() if k not in FORBIDDEN_BUILTINS}

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level or name not in ALLOWED_MODULES:
            raise ImportError(f"import of '{name}' is refused in a kernel")
        return builtins.__import__(name, globals, locals, fromlist, level)

    safe["__import__"] = guarded_import
    module.__dict__["__builtins__"] = safe
    sys.modules[loader_spec.name] = module
    loader_spec.loader.exec_module(module)
    return getattr(module, checked.entry)


def resolve(spec: Any, choice: str) -> Callable | None:
    """Dispatch resolver: the implementation for `generated:<op>:<sha>`, None for other ids."""
    if not choice.startswith(PREFIX + ":"):
        return None
    parts = choice.split(":")
    if len(parts) != 3 or parts[1] != spec.name:
        raise ConfigError(f"kernels.{spec.name}: '{choice}' is not a generated {spec.name} kernel")
    path = saved_path(choice)
    if not path.is_file():
        raise ConfigError(f"kernels.{spec.name}: generated kernel {choice} is not in {path.parent}"
                          " (it is saved there when it passes the gate in a kernel search)")
    return load_module_entry(path.read_text(), spec, path.parent, path.stem.replace("-", "_"))


def register() -> None:
    from autorec.kernels.dispatch import register_variant_resolver

    register_variant_resolver(resolve)
