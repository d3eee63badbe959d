"""The child process of the sandbox: load one variant, gate it, optionally time it, write JSON.

    python -I -m autorec.kernels.harness.run_candidate < request.json

Started only by sandbox.run_request, with a scrubbed environment and resource limits already set.
The order matters: the gate (and its references to timers and comparisons) is imported before the
candidate; generated source is loaded with restricted builtins (an `__import__` that admits only
the allow-listed modules, no open/eval/exec) and under an audit hook that refuses sockets, new
processes (except Triton's own compiler tools on a GPU), and files outside this evaluation's
folder and the installed libraries. The result goes to the file the request names.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

# Executables Triton itself runs when it compiles for a GPU (the launcher stub, ptxas, libcuda).
TOOLCHAIN = frozenset({"gcc", "cc", "clang", "ldconfig", "ptxas", "cuobjdump", "nvdisasm",
                       "x86_64-linux-gnu-gcc"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def main() -> None:
    request = json.loads(sys.stdin.read())
    result_path = Path(request["result_path"])
    try:
        result = evaluate(request)
    except BaseException as err:  # noqa: BLE001 - the parent reads a reason, never a traceback
        result = {"op": request.get("op"), "passed": False, "stage": "load",
                  "reason": f"{type(err).__name__}: {_last_line(err)}"}
        sys.stderr.write(traceback.format_exc())
    result_path.write_text(json.dumps(result, default=_plain))
    sys.stdout.flush()
    # Skip interpreter teardown: a kernel that corrupted memory can crash atexit handlers.
    os._exit(0)


def evaluate(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from autorec.kernels.harness import gate  # before the candidate: its references are the originals
    from autorec.kernels.harness.variants import (
        check_variant,
        resolve_dtypes,
        resolve_shapes,
        variant_label,
    )
    from autorec.kernels.registry import get_op

    spec = get_op(request["op"])
    spec, variant = check_variant(spec.name, request["variant"])
    device = torch.device(request["device"])
    shapes = resolve_shapes(spec, request.get("shapes"))
    dtypes = resolve_dtypes(spec, request.get("dtypes"))
    strict = "source" in variant
    timed = request.get("mode") == "bench"
    if timed:  # the yardstick first, before any generated code is loaded
        from autorec.kernels.harness.bench import require_gpu, time_baselines

        require_gpu(device)
        baselines = time_baselines(spec, shapes, dtypes, device,
                                   compare_compile=bool(request.get("compile", True)))
    if strict:
        impl = load_source(variant["source"], spec, Path(request["result_path"]).parent)
    else:
        impl = spec.build(variant["knobs"])
    result = gate.run_gate(
        spec, impl, variant=variant_label(variant), shapes=shapes, dtypes=dtypes,
        trials=int(request.get("trials") or 5), seed=request.get("seed"), device=device,
        strict=strict,
    ).to_dict()
    result["stage"] = "gate"
    if result["passed"] and timed:
        from autorec.kernels.harness.bench import time_variant

        try:
            result["timings"] = time_variant(spec, impl, shapes, dtypes, device, baselines)
            result["stage"] = "bench"
        except gate.Rejected as err:
            result.update(passed=False, reason=str(err), stage="bench")
    return result


# Loading generated source.


def load_source(source: str, spec: Any, folder: Path):
    """The entry function of `source`, loaded (restricted builtins) under the audit hook."""
    from autorec.kernels.harness.generated import load_module_entry
    from autorec.kernels.harness.static_check import check_source

    check_source(source, spec.signature)  # again, before the hook: the child trusts no one
    install_audit_hook(folder)
    return load_module_entry(source, spec, folder, "autorec_candidate_kernel")


def install_audit_hook(folder: Path) -> None:
    """From here on: no sockets, no processes but Triton's toolchain, no files outside `folder`
    and the installed libraries. Audit hooks cannot be removed, which is the point."""
    folder = str(folder.resolve())
    readable = _readable_roots(folder)

    def refuse(what: str) -> None:
        raise PermissionError(f"{what} is refused in a kernel evaluation")

    def hook(event: str, args: tuple) -> None:
        if event.startswith("socket."):
            refuse("network access")
        elif event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.spawn"):
            executable = args[0] if args else ""
            if isinstance(executable, (list, tuple)):
                executable = executable[0] if executable else ""
            if os.path.basename(str(executable)) not in TOOLCHAIN:
                refuse(f"starting a process ({executable})")
        elif event in ("os.system", "os.fork", "os.forkpty", "pty.spawn"):
            refuse("starting a process")
        elif event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            if isinstance(path, int) or path is None:
                return
            path = os.path.realpath(os.fsdecode(path))
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS)
            if writes and not _under(path, (folder,)):
                refuse(f"writing {path}")
            if not writes and not _under(path, readable):
                refuse(f"reading {path}")
        elif event in ("os.remove", "os.rename", "os.rmdir", "shutil.rmtree", "os.chmod",
                       "os.symlink", "os.link", "os.truncate"):
            path = os.path.realpath(os.fsdecode(args[0])) if args and isinstance(
                args[0], (str, bytes, os.PathLike)) else ""
            if not _under(path, (folder,)):
                refuse(f"{event} on {path or args}")

    sys.addaudithook(hook)


def _readable_roots(folder: str) -> tuple[str, ...]:
    roots = {folder, sys.prefix, sys.base_prefix, sys.exec_prefix, "/proc", "/sys", "/dev",
             "/usr/lib", "/usr/lib64", "/usr/local/cuda", "/usr/local/lib", "/lib", "/lib64",
             "/etc/ld.so.cache", "/usr/share/zoneinfo", "/opt/nvidia"}
    roots.update(p for p in sys.path if p and os.path.isdir(p))
    roots.update(p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p)
    import autorec
    import autorec.kernels

    roots.update(autorec.__path__)  # autorec's own lazy imports; not the repository around it
    roots.update(autorec.kernels.__path__)
    return tuple(os.path.realpath(r) for r in roots)


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _last_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[-1][:500] if lines else ""


def _plain(value: Any) -> Any:
    return str(value)


if __name__ == "__main__":
    main()
