"""`autorec kernels`: the ops, and the correctness gate and GPU timing of one variant.

Every variant, a template's knobs or a generated source file, is checked in the sandbox (a
separate, limited process), exactly as the kernel search checks it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from autorec.cli.output import console, print_json, table
from autorec.errors import ConfigError

app = typer.Typer(help="Recommender ops: list them, gate a variant, time it on a GPU.",
                  no_args_is_help=True)

VARIANT_HELP = "template knobs as JSON, e.g. '{\"BLOCK_B\": 32}' (default: the default knobs)"
SOURCE_HELP = "a Python file with a generated kernel written against the op's signature"
SHAPES_HELP = "shape set: interpreter, suite or production (default: interpreter on CPU, suite on GPU)"


@app.command("list")
def list_ops(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every op with its signature, knobs and gradient inputs."""
    from autorec.kernels.registry import OPS

    rows = [{"op": s.name, "signature": s.signature.split("#")[0].strip(),
             "knobs": {k: list(v) for k, v in s.knobs.items()}, "grad_inputs": list(s.grad_inputs),
             "memory_bound": s.memory_bound,
             "shapes": {k: len(v) for k, v in s.shapes.items()}} for s in OPS.values()]
    if as_json:
        print_json(rows)
        return
    console.print(table(None, ["op", "knobs", "grad inputs", "memory-bound"], [
        (r["op"], ", ".join(r["knobs"]), ", ".join(r["grad_inputs"]),
         "yes" if r["memory_bound"] else "no") for r in rows]))


def _variant(op: str, variant: str | None, source: Path | None) -> dict:
    from autorec.kernels.harness.variants import check_variant, parse_knobs

    if variant is not None and source is not None:
        raise ConfigError("give --variant or --source, not both")
    if source is not None:
        if not source.is_file():
            raise ConfigError(f"--source {source}: no such file")
        chosen = {"source": source.read_text()}
    else:
        chosen = {"knobs": parse_knobs(variant or "", op)}
    return check_variant(op, chosen)[1]


def _run(op, variant, source, shapes, dtype, trials, seed, device, time_limit, mode,
         compare_compile=True):
    from autorec.kernels.harness.sandbox import evaluate_variant

    if trials < 1:
        raise ConfigError("--trials must be at least 1")
    chosen = _variant(op, variant, source)
    if device not in (None, "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ConfigError(f"--device must be cpu or cuda, got {device}")
    return evaluate_variant(op, chosen, mode=mode, shapes=shapes, dtypes=dtype or None,
                            trials=trials, seed=seed, device=device, time_limit=time_limit,
                            compare_compile=compare_compile)


def _report(result: dict, as_json: bool) -> None:
    if as_json:
        print_json(result)
    elif result["passed"]:
        where = "cpu under TRITON_INTERPRET=1" if result.get("interpreter") else result["device"]
        typer.echo(f"{result['op']} [{result['variant']}] passed the gate on {where}: "
                   f"{result['trials']} calls over {len(result['shapes'])} shapes x "
                   f"{', '.join(result['dtypes'])}, forward and backward (max abs error "
                   f"{result['max_abs_error']:.2e} forward, {result['max_grad_abs_error']:.2e} "
                   "backward)")
    else:
        typer.echo(f"{result['op']} REJECTED ({result.get('stage', 'gate')}): {result['reason']}")


OP_ARG = typer.Argument(..., help="op name (autorec kernels list)")


@app.command("check")
def check(
    op: str = OP_ARG,
    variant: str = typer.Option(None, "--variant", help=VARIANT_HELP),
    source: Path = typer.Option(None, "--source", help=SOURCE_HELP),
    shapes: str = typer.Option(None, "--shapes", help=SHAPES_HELP),
    dtype: list[str] = typer.Option(None, "--dtype", help="float32 or bfloat16; repeat for both"),
    trials: int = typer.Option(5, "--trials", help="fresh random inputs per shape and dtype"),
    seed: int = typer.Option(None, "--seed", help="base seed of the inputs (default: random)"),
    device: str = typer.Option(None, "--device", help="cpu (Triton interpreter) or cuda"),
    time_limit: float = typer.Option(600, "--time-limit", help="seconds before the check is stopped"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Gate a variant: forward and backward against the reference; exit 1 when rejected."""
    result = _run(op, variant, source, shapes, dtype, trials, seed, device, time_limit, "gate")
    _report(result, as_json)
    if not result["passed"]:
        raise typer.Exit(1)


@app.command("bench")
def bench(
    op: str = OP_ARG,
    variant: str = typer.Option(None, "--variant", help=VARIANT_HELP),
    source: Path = typer.Option(None, "--source", help=SOURCE_HELP),
    shapes: str = typer.Option(None, "--shapes", help=SHAPES_HELP),
    dtype: list[str] = typer.Option(None, "--dtype", help="float32 or bfloat16; repeat for both"),
    trials: int = typer.Option(5, "--trials", help="gate: fresh random inputs per shape and dtype"),
    seed: int = typer.Option(None, "--seed"),
    interpreter: bool = typer.Option(False, "--interpreter",
                                     help="no GPU: run only the gate under the interpreter"),
    time_limit: float = typer.Option(900, "--time-limit"),
    no_compile: bool = typer.Option(False, "--no-compile", help="skip torch.compile's column"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Gate, then time on a GPU against PyTorch eager and torch.compile (do_bench medians)."""
    import torch

    if interpreter:
        result = _run(op, variant, source, shapes, dtype, trials, seed, "cpu", time_limit, "gate")
        _report(result, as_json)
        if not as_json:
            typer.echo("no timing: the Triton interpreter's speed is not a speed (run on a GPU)")
        raise typer.Exit(0 if result["passed"] else 1)
    if not torch.cuda.is_available():
        raise ConfigError("timing needs a CUDA GPU and none is visible; `--interpreter` runs "
                          "only the correctness gate")
    result = _run(op, variant, source, shapes, dtype, trials, seed, "cuda", time_limit, "bench",
                  compare_compile=not no_compile)
    if as_json or not result["passed"]:
        _report(result, as_json)
    else:
        _print_timings(result)
    if not result["passed"]:
        raise typer.Exit(1)


def _print_timings(result: dict) -> None:
    columns = ["shape", "dtype", "triton fwd ms", "eager fwd ms", "compile fwd ms",
               "x eager fwd", "triton fwd+bwd ms", "eager fwd+bwd ms", "x eager fwd+bwd",
               "x compile fwd+bwd", "GB/s", "HBM frac"]
    keys = ["shape", "dtype", "triton_fwd_ms", "eager_fwd_ms", "compile_fwd_ms",
            "speedup_eager_fwd", "triton_fwd_bwd_ms", "eager_fwd_bwd_ms", "speedup_eager_fwd_bwd",
            "speedup_compile_fwd_bwd", "fwd_gbps", "hbm_fraction"]
    rows = [[row.get(k, "") if k != "shape" else ",".join(f"{a}={b}" for a, b in row[k].items())
             for k in keys] for row in result["timings"]]
    console.print(table(f"{result['op']} [{result['variant']}] on {result['device']} "
                        "(do_bench medians, L2 flushed)", columns, rows))
