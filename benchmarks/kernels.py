"""Every op's Triton kernel against PyTorch eager and torch.compile, on a GPU.

    python benchmarks/kernels.py --shapes production --out benchmarks/results/kernels_production.json
    python benchmarks/kernels.py --interpreter            # no GPU: the gate only, no timing

Each op's hand-written kernel (default knobs, or `--knobs OP=JSON`) goes through the sandbox as
`autorec kernels bench` runs it: the correctness gate first (forward and backward, five fresh
inputs per shape and dtype), then `triton.testing.do_bench` medians with the L2 flushed, forward
and forward plus backward, against eager and torch.compile; memory-bound ops add achieved
bandwidth as a fraction of the GPU's HBM peak. The markdown table printed at the end is the one
docs/gpu.md keeps. Without a GPU it says so and exits 2; `--interpreter` runs only the gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", nargs="*", help="ops to run (default: every op)")
    parser.add_argument("--shapes", default="production", help="interpreter, suite or production")
    parser.add_argument("--dtypes", nargs="*", default=None, help="float32 bfloat16 (default both)")
    parser.add_argument("--knobs", nargs="*", default=[], help="OP=JSON knob overrides")
    parser.add_argument("--interpreter", action="store_true", help="no GPU: gate only")
    parser.add_argument("--time-limit", type=float, default=1200)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile's column")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from autorec.kernels.harness.sandbox import evaluate_variant
    from autorec.kernels.registry import OPS

    if not args.interpreter and not torch.cuda.is_available():
        print("error: timing needs a CUDA GPU and none is visible; --interpreter runs only the "
              "correctness gate", file=sys.stderr)
        return 2
    knobs = {}
    for item in args.knobs:
        op, _, text = item.partition("=")
        knobs[op] = json.loads(text)
    results = []
    for op in args.ops or list(OPS):
        variant = {"knobs": knobs.get(op, {})}
        if args.interpreter:
            result = evaluate_variant(op, variant, shapes="interpreter", dtypes=args.dtypes,
                                      device="cpu", time_limit=args.time_limit)
        else:
            result = evaluate_variant(op, variant, mode="bench", shapes=args.shapes,
                                      dtypes=args.dtypes, device="cuda",
                                      time_limit=args.time_limit,
                                      compare_compile=not args.no_compile)
        results.append(result)
        status = "passed" if result["passed"] else f"REJECTED: {result['reason']}"
        print(f"{op}: gate {status}", flush=True)
    environment = {"torch": torch.__version__,
                   "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"environment": environment, "results": results},
                                       indent=2, default=str))
    if not args.interpreter:
        print(markdown(results, environment["device"]))
    return 0 if all(r["passed"] for r in results) else 1


def markdown(results: list[dict], device: str) -> str:
    lines = [f"Device: {device}; do_bench medians (ms), L2 flushed before every repeat.", "",
             "| op | shape | dtype | triton fwd+bwd | eager fwd+bwd | compile fwd+bwd | x eager | "
             "x compile | triton fwd | x eager fwd | GB/s fwd | HBM peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        for row in result.get("timings") or []:
            shape = ", ".join(f"{k}={v}" for k, v in row["shape"].items())

            def cell(key: str, fmt: str = "{:.3f}") -> str:
                return fmt.format(row[key]) if key in row else "–"

            lines.append(" | ".join([
                f"| {result['op']}", shape, row["dtype"], cell("triton_fwd_bwd_ms"),
                cell("eager_fwd_bwd_ms"), cell("compile_fwd_bwd_ms"),
                cell("speedup_eager_fwd_bwd", "{:.2f}x"), cell("speedup_compile_fwd_bwd", "{:.2f}x"),
                cell("triton_fwd_ms"), cell("speedup_eager_fwd", "{:.2f}x"),
                cell("fwd_gbps", "{:.0f}"), cell("hbm_fraction", "{:.0%}"),
            ]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
