"""Timing of a gated variant on a GPU, against PyTorch eager and torch.compile.

Only a variant that passed the gate is timed, and only on CUDA: the Triton interpreter runs
kernels in numpy one program at a time, so its times say nothing about a GPU and are never
reported as a speed (`require_gpu` says so in one line).

Each figure is `triton.testing.do_bench(..., return_mode="median")`: do_bench zeroes a buffer
larger than the L2 cache before every repeat (so no call starts with its inputs in L2) and times
each repeat with CUDA events; the median over repeats resists outliers. Forward and forward plus
backward are timed separately, on inputs made once per shape. For memory-bound ops the forward's
achieved bandwidth is `spec.bytes_moved / time`, also as a fraction of the device's HBM peak.

A check against work hidden on a side stream (whose time CUDA events on the current stream would
miss): the same calls are timed once more with a full device synchronize around them, and a
variant whose synchronized time is far above its event time (beyond the gap launch overhead
gives eager itself) is refused.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch

from autorec.errors import ConfigError

# HBM peak in GB/s by device name (vendor figures); AUTOREC_HBM_PEAK_GBPS overrides.
HBM_PEAK_GBPS = {
    "H200": 4800, "H100 SXM": 3350, "H100 80GB HBM3": 3350, "H100 PCIe": 2000, "H100 NVL": 3900,
    "GH200": 4000, "B200": 8000, "A100-SXM4-80GB": 2039, "A100 80GB PCIe": 1935,
    "A100-SXM4-40GB": 1555, "A100-PCIE-40GB": 1555, "L40S": 864, "L4": 300, "A10": 600,
    "V100": 900, "RTX 4090": 1008, "RTX 3090": 936,
}  # fmt: skip
SIDE_STREAM_FACTOR = 3.0  # synchronized time over event time above which the work hid elsewhere
WARMUP_MS, REP_MS = 25, 100


def require_gpu(device: torch.device | str) -> None:
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        raise ConfigError("timing needs a CUDA GPU; under the Triton interpreter only the "
                          "correctness gate runs (no interpreter time is a speed)")


def hbm_peak_gbps(device: torch.device) -> float | None:
    override = os.environ.get("AUTOREC_HBM_PEAK_GBPS")
    if override:
        return float(override)
    name = torch.cuda.get_device_name(device)
    matches = [peak for key, peak in HBM_PEAK_GBPS.items() if key in name]
    return max(matches) if matches else None


def median_ms(fn: Callable[[], Any], grad_to_none: list[torch.Tensor] | None = None) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=WARMUP_MS, rep=REP_MS,
                                         grad_to_none=grad_to_none, return_mode="median"))


def _synchronized_ms(fn: Callable[[], Any], calls: int = 20) -> float:
    from autorec.kernels.harness.gate import wall_clock

    torch.cuda.synchronize()
    start = wall_clock()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (wall_clock() - start) * 1e3 / calls


def _synced_forward_ms(spec, impl, shape, dtype, device) -> float:
    kwargs = spec.make_inputs(shape, dtype, device, 0)
    with torch.no_grad():
        return _synchronized_ms(lambda: impl(**kwargs))


def _forward_and_backward(impl, kwargs: dict[str, Any]):
    grad_out = None

    def forward():
        return impl(**kwargs)

    def both():
        nonlocal grad_out
        out = impl(**kwargs)
        if grad_out is None:
            grad_out = torch.randn_like(out)
        out.backward(grad_out)

    return forward, both


def time_impl(spec, impl, shape: dict[str, Any], dtype: torch.dtype, device: torch.device
              ) -> dict[str, float]:
    """Median ms of the forward, and of forward plus backward where the op has gradients."""
    kwargs = spec.make_inputs(shape, dtype, device, 0)
    leaves = [kwargs[n] for n in spec.grad_inputs]
    forward, both = _forward_and_backward(impl, kwargs)
    with torch.no_grad():
        times = {"fwd_ms": median_ms(forward)}
    if leaves:
        times["fwd_bwd_ms"] = median_ms(both, grad_to_none=leaves)
    return times


def time_baselines(spec, shapes: list[dict[str, Any]], dtypes: list[torch.dtype],
                   device: torch.device, compare_compile: bool = True) -> list[dict[str, Any]]:
    """One row per (shape, dtype) with PyTorch eager's and torch.compile's times. The sandbox
    runs this before it loads a generated kernel, so the kernel cannot touch the yardstick."""
    require_gpu(device)
    compiled = _compiled(spec.reference) if compare_compile else None
    rows = []
    for shape in shapes:
        for dtype in dtypes:
            row: dict[str, Any] = {"shape": shape, "dtype": str(dtype).removeprefix("torch.")}
            row.update({f"eager_{k}": v
                        for k, v in time_impl(spec, spec.reference, shape, dtype, device).items()})
            row["eager_synced_fwd_ms"] = _synced_forward_ms(spec, spec.reference, shape, dtype,
                                                            device)
            if compiled is not None:
                try:
                    row.update({f"compile_{k}": v
                                for k, v in time_impl(spec, compiled, shape, dtype, device).items()})
                except Exception as err:  # noqa: BLE001 - torch.compile may not take an op
                    row["compile_error"] = f"{type(err).__name__}: {err}"[:300]
            rows.append(row)
    return rows


def time_variant(spec, impl, shapes: list[dict[str, Any]], dtypes: list[torch.dtype],
                 device: torch.device, baselines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`baselines` (from time_baselines, same shapes and dtypes) with the variant's times,
    speedups and bandwidth added."""
    from autorec.kernels.harness.gate import Rejected

    require_gpu(device)
    peak = hbm_peak_gbps(device)
    rows = []
    pairs = [(shape, dtype) for shape in shapes for dtype in dtypes]
    for (shape, dtype), baseline in zip(pairs, baselines, strict=True):
        row = dict(baseline)
        candidate = time_impl(spec, impl, shape, dtype, device)
        synced = _synced_forward_ms(spec, impl, shape, dtype, device)
        # Launch overhead also makes synchronized time exceed event time; eager pays it too, so
        # only a gap far beyond eager's own is work hidden from the events.
        eager_gap = row["eager_synced_fwd_ms"] / max(row["eager_fwd_ms"], 1e-6)
        gap = synced / max(candidate["fwd_ms"], 1e-6)
        if gap > SIDE_STREAM_FACTOR * max(1.0, eager_gap) and synced - candidate["fwd_ms"] > 0.05:
            raise Rejected(
                f"shape {shape}: {synced:.3f} ms per call with a device synchronize but "
                f"{candidate['fwd_ms']:.3f} ms by CUDA events: work escaped the timed stream")
        row.update({f"triton_{k}": v for k, v in candidate.items()})
        for key in ("fwd_ms", "fwd_bwd_ms"):
            if f"triton_{key}" in row and f"eager_{key}" in row:
                row[f"speedup_eager_{key[:-3]}"] = row[f"eager_{key}"] / row[f"triton_{key}"]
                if f"compile_{key}" in row:
                    row[f"speedup_compile_{key[:-3]}"] = row[f"compile_{key}"] / row[f"triton_{key}"]
        gbps = spec.bytes_moved(shape, dtype) / (row["triton_fwd_ms"] * 1e-3) / 1e9
        row["fwd_gbps"] = gbps
        if spec.memory_bound and peak:
            row["hbm_fraction"] = gbps / peak
        rows.append(row)
    return rows


def _compiled(reference):
    try:
        return torch.compile(reference, dynamic=False)
    except Exception:  # noqa: BLE001 - no compiler backend: the column stays empty
        return None
