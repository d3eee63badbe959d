"""Seconds per agent LLM call on the embedded model: float32 without and with KV-cache prefix
reuse, then int8 weights with reuse (the default).

    python benchmarks/llm_latency.py --calls 8 --out benchmarks/results/llm_latency.json

The agent's real prompts: the `architecture` space on ML-100K, an archive of 11 finished
candidates (the reference and 10 seeded random draws with made-up fitness), one LLM proposer
asked for `--calls` proposals in its automatic modes, each call timed by the backend. The same
sequence runs three times in one process: float32 weights with the prefix cache off (every prompt
runs in full), float32 with it on, int8 with it on; the model (and its int8 copy) is loaded and
warmed up before any. Each reply's text is kept, so the JSON shows how often int8 answers exactly
as float32 did. Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any


def archive(space) -> list[Any]:
    import optuna

    from autorec.agents import CandidateSummary

    rng = random.Random(0)
    reference = space.reference().model_dump(mode="json")
    nodes = [CandidateSummary(1, reference, "done", 0.0, {"valid_auc": 0.78}, "reference", [], 0)]
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    for cid in range(2, 12):
        params = space.sample(study.ask()).model_dump(mode="json")
        gain = rng.uniform(-0.02, 0.01)
        nodes.append(CandidateSummary(cid, params, "done", gain, {"valid_auc": 0.78 + gain},
                                      "tpe", [1], 1))  # fmt: skip
    return nodes


def run(calls: int, reuse: bool, weights: str) -> dict[str, Any]:
    from autorec.agents import ProposalContext
    from autorec.agents.agent import LLMProposer
    from autorec.agents.llm import local
    from autorec.space import load_space

    space = load_space("architecture", {"dataset": "ml-100k", "task": "ctr"})
    backend = local.LocalBackend(weights=weights)
    backend.load()
    local.MIN_REUSE = 32 if reuse else 10**9
    timings: list[dict[str, Any]] = []
    complete = backend.complete

    def timed(*args, **kwargs):
        reply = complete(*args, **kwargs)
        timings.append({"tokens_in": reply.tokens_in, "tokens_out": reply.tokens_out,
                        "latency_s": reply.latency_s, "text": reply.text})  # fmt: skip
        return reply

    backend.complete = timed
    proposer = LLMProposer(space, seed=0, backend=backend)
    nodes = archive(space)
    while len(timings) < calls:
        proposer.propose(ProposalContext(space, 1, nodes, None, 0), 1)
    timings = timings[:calls]
    latencies = [t["latency_s"] for t in timings]
    return {"reuse": reuse, "weights": weights, "calls": timings, "median_s": statistics.median(latencies),
            "mean_s": statistics.fmean(latencies), "reused_tokens": backend.reused_tokens,
            "tokens_in_median": statistics.median(t["tokens_in"] for t in timings),
            "tokens_out_median": statistics.median(t["tokens_out"] for t in timings)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/llm_latency.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from autorec.agents.llm.local import LocalBackend

    for weights in ("float32", "int8"):  # warm up: load, quantise, one short reply
        LocalBackend(weights=weights).complete([{"role": "user", "content": "Say ok."}],
                                               max_tokens=4)  # fmt: skip
    started = time.perf_counter()
    results = [run(args.calls, reuse=False, weights="float32"),
               run(args.calls, reuse=True, weights="float32"),
               run(args.calls, reuse=True, weights="int8")]
    same = sum(a["text"] == b["text"] for a, b in zip(results[1]["calls"], results[2]["calls"]))
    out = {"benchmark": "llm_latency", "threads": args.threads, "results": results,
           "ratio_median": results[1]["median_s"] / results[0]["median_s"],
           "ratio_median_int8": results[2]["median_s"] / results[0]["median_s"],
           "int8_replies_identical": same,
           "wall_s": time.perf_counter() - started,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_at_end": [round(x, 2) for x in os.getloadavg()]}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for r in results:
        print(f"{r['weights']}, prefix reuse {'on ' if r['reuse'] else 'off'}: median {r['median_s']:.2f} s, "
              f"mean {r['mean_s']:.2f} s over {len(r['calls'])} calls; prompt tokens median "
              f"{r['tokens_in_median']:.0f}, reply {r['tokens_out_median']:.0f}; "
              f"reused {r['reused_tokens']} prompt tokens")
    print(f"median ratio against float32 without reuse: reuse {out['ratio_median']:.2f}, "
          f"int8 + reuse {out['ratio_median_int8']:.2f}; int8 replies identical to float32's: "
          f"{same} of {args.calls}")


if __name__ == "__main__":
    main()
