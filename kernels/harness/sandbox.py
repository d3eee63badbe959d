"""Run one kernel evaluation in a separate, limited process: generated source never runs here.

    result = evaluate_variant("fm_interaction", {"source": text}, time_limit=120)
    result["passed"], result["reason"]

The parent (a search worker, the CLI) checks generated source statically first (static_check); only
then does it start `python -m autorec.kernels.harness.run_candidate` with

- a fresh temporary folder as working directory, HOME, TMPDIR and Triton cache;
- a scrubbed environment: only PATH, the library path, the CUDA device selection, TRITON_INTERPRET
  and thread counts pass; no credentials, no PYTHONPATH;
- resource limits set before the interpreter starts: CPU seconds, open files, the size of a file
  it may write, no core dumps, and address space on CPU (a CUDA context reserves far more address
  space than it uses, so on a GPU the device's own memory limit is the bound);
- a wall-time limit: past it the whole process group is killed.

The child reports through a JSON file, never stdout (a kernel may print). A crash (segfault, an
illegal address that takes the CUDA context down) or a hang ends only that process and comes back
as a failed result with its reason; nothing is raised for a bad candidate.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_TIME_LIMIT = 300.0
DEFAULT_MEMORY_MB = 8192
MAX_WRITTEN_FILE_MB = 512
MAX_OPEN_FILES = 1024
PASSED_ENV = ("PATH", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "TRITON_INTERPRET",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TRITON_LIBCUDA_PATH", "TRITON_PTXAS_PATH")


def evaluate_variant(
    op: str,
    variant: dict[str, Any],
    *,
    mode: str = "gate",
    shapes: str | None = None,
    dtypes: list[str] | None = None,
    trials: int = 5,
    seed: int | None = None,
    device: str | None = None,
    interpreter: bool | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    memory_mb: int = DEFAULT_MEMORY_MB,
    compare_compile: bool = True,
) -> dict[str, Any]:
    """The result of gating (mode "gate") or gating then timing (mode "bench") one variant.

    `variant` is {"knobs": {...}} for the op's Triton template or {"source": text} for generated
    code. `device` defaults to cuda where torch sees one, else cpu with the Triton interpreter.
    `compare_compile` adds torch.compile's times to a timed run (compiling takes a while).
    The result always has `passed` and `reason`; a timed run adds `timings`.
    """
    from autorec.kernels.harness.variants import check_variant, resolve_dtypes, resolve_shapes

    spec, variant = check_variant(op, variant)
    if shapes is not None:
        resolve_shapes(spec, shapes)  # a bad shape set or dtype is the caller's error, here
    resolve_dtypes(spec, dtypes)
    device = device or _default_device()
    interpreter = (device == "cpu") if interpreter is None else interpreter
    request = {
        "op": spec.name, "variant": variant, "mode": mode, "shapes": shapes, "dtypes": dtypes,
        "trials": trials, "seed": seed, "device": device, "compile": compare_compile,
    }
    if "source" in variant:
        from autorec.kernels.harness.static_check import StaticCheckError, check_source

        try:
            check_source(variant["source"], spec.signature)
        except StaticCheckError as err:
            return failed(spec.name, f"static check: {err}", stage="static")
    return run_request(request, interpreter=interpreter, time_limit=time_limit,
                       memory_mb=memory_mb)


def failed(op: str, reason: str, stage: str) -> dict[str, Any]:
    return {"op": op, "passed": False, "reason": reason, "stage": stage}


def run_request(request: dict[str, Any], *, interpreter: bool, time_limit: float,
                memory_mb: int) -> dict[str, Any]:
    """Run the child on `request`; its result, or a failed result saying how it ended."""
    op = request["op"]
    with tempfile.TemporaryDirectory(prefix="autorec-kernel-") as folder:
        work = Path(folder)
        result_path = work / "result.json"
        request = {**request, "result_path": str(result_path)}
        env = _scrubbed_env(work, interpreter)
        cpu_device = request["device"] == "cpu"
        proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "autorec.kernels.harness.run_candidate"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=work, env=env, start_new_session=True,
            preexec_fn=lambda: _limit_resources(time_limit, memory_mb if cpu_device else None),
        )
        try:
            _, stderr = proc.communicate(json.dumps(request), timeout=time_limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return failed(op, f"timed out after {time_limit:g} s (a hang, an endless loop or a "
                              "kernel far too slow)", stage="timeout")
        finally:
            _kill_group(proc)  # whatever it started in its session goes with it
        if result_path.is_file():
            try:
                return json.loads(result_path.read_text())
            except json.JSONDecodeError:
                pass
        return failed(op, _death_reason(proc.returncode, stderr), stage="crash")


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _scrubbed_env(work: Path, interpreter: bool) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update(
        HOME=str(work), TMPDIR=str(work), TRITON_CACHE_DIR=str(work / "triton-cache"),
        TRITON_HOME=str(work), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
        TRITON_INTERPRET="1" if interpreter else "0",
    )
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _limit_resources(time_limit: float, memory_mb: int | None) -> None:
    """In the child, before exec: bounds the kernel cannot raise (hard limits)."""
    import resource

    cpu = int(time_limit) + 10
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    written = MAX_WRITTEN_FILE_MB * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (written, written))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(MAX_OPEN_FILES, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    if memory_mb:
        size = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's whole session (it leads its own process group) and reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass


def _death_reason(code: int, stderr: str) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGSEGV": "a crash, e.g. an out-of-bounds or illegal memory access",
                "SIGKILL": "killed, e.g. out of memory", "SIGXCPU": "CPU time limit",
                "SIGBUS": "a bad memory access", "SIGABRT": "an abort"}.get(name, "killed")
        return f"the evaluation process died with {name} ({hint})"
    tail = [line for line in (stderr or "").strip().splitlines() if line.strip()]
    last = tail[-1][:500] if tail else "no output"
    if code == 0:
        return f"the evaluation process ended without a result: {last}"
    return f"the evaluation process exited with code {code}: {last}"
