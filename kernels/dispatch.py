"""One switch for every op: which implementation models call.

Models never import an implementation; they call `autorec.kernels.op("fm_interaction")(x)`,
which returns whatever is selected now. The training setting `kernels` selects per op:

    kernels:
      fm_interaction: triton               # the hand-written Triton kernel, default knobs
      dcn_cross: {BLOCK_M: 64, num_warps: 8}   # the Triton template with these knobs
      hstu_attention: reference            # the PyTorch oracle (what every op uses by default)

(`autorec train --set kernels.fm_interaction=triton`, `--set kernels.dcn_cross.BLOCK_M=64`).
Other strings are variant ids, resolved by the resolvers registered with
`register_variant_resolver` (the kernel search registers one for its archived candidates).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from autorec.errors import ConfigError, UnknownNameError
from autorec.kernels.common import interpreting
from autorec.kernels.registry import OPS, Implementation, OpSpec, get_op

REFERENCE, TRITON = "reference", "triton"

# op name -> the implementation models call; an op that is absent uses its reference.
_selected: dict[str, Implementation] = {}
_resolvers: list[Callable[[OpSpec, str], Implementation | None]] = []


def op(name: str) -> Implementation:
    """The implementation of op `name` selected now (its PyTorch reference unless set)."""
    spec = get_op(name)
    return _selected.get(name, spec.reference)


def register_variant_resolver(resolver: Callable[[OpSpec, str], Implementation | None]) -> None:
    """Lets `kernels.OP=ID` name a variant: `resolver(spec, id)` returns its implementation, or
    None when the id is not one of its own."""
    if resolver not in _resolvers:
        _resolvers.append(resolver)


def resolve(name: str, choice: Any) -> Implementation:
    """The implementation one `kernels` entry names; a bad op or variant is an AutorecError."""
    spec = get_op(name)
    if choice == REFERENCE:
        return spec.reference
    if choice == TRITON:
        return spec.triton_default
    if isinstance(choice, dict):
        return spec.build(choice)
    if isinstance(choice, str):
        if choice.startswith("generated:"):
            # A kernel a search wrote and gated (`autorec export` names it so): its resolver
            # loads it with the sandbox's static checks and import allow-list.
            from autorec.kernels.harness.generated import register

            register()
        for resolver in _resolvers:
            implementation = resolver(spec, choice)
            if implementation is not None:
                return implementation
    # Knob dicts and archived ids are the other choices; docs/kernels.md explains them.
    raise UnknownNameError(f"{name} kernel", str(choice), [REFERENCE, TRITON])


def uses_triton(implementation: Implementation) -> bool:
    return not any(implementation is spec.reference for spec in OPS.values())


def select(
    settings: dict[str, Any] | None, device: torch.device | None = None
) -> dict[str, Implementation]:
    """Resolve a whole `kernels` setting without applying it. With a device, also refuse a
    Triton choice that cannot run there, in one line, before any training starts."""
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError(f"kernels must map op names to implementations, got {settings!r}")
    chosen = {name: resolve(name, choice) for name, choice in (settings or {}).items()}
    if device is not None and device.type != "cuda" and not interpreting():
        triton_ops = sorted(name for name, impl in chosen.items() if uses_triton(impl))
        if triton_ops:
            raise ConfigError(
                f"kernels: {', '.join(triton_ops)} set to a Triton kernel, which needs a CUDA "
                f"device (training runs on {device.type}); set TRITON_INTERPRET=1 to run it in "
                "Triton's interpreter, slowly, or use reference"
            )
    return chosen


def configure(settings: dict[str, Any] | None, device: torch.device | None = None) -> None:
    """Make `settings` the selection of this process: the ops it names run what it says, every
    other op its reference. The trainer calls this with its `kernels` setting."""
    chosen = select(settings, device)
    _selected.clear()
    _selected.update(chosen)


@contextlib.contextmanager
def using(settings: dict[str, Any] | None, device: torch.device | None = None) -> Iterator[None]:
    """Apply a `kernels` setting inside the block, then restore the previous selection."""
    chosen = select(settings, device)
    previous = dict(_selected)
    _selected.update(chosen)
    try:
        yield
    finally:
        _selected.clear()
        _selected.update(previous)

