"""The embedded LLM's decoding with float32, weight-only int8 (autorec's default) and dynamic int8
weights: speed of one decoding step and what each costs in quality.

    python benchmarks/int8_decoding.py --threads 2 --out benchmarks/results/int8_decoding.json

Quality, on README.md's text (the first `--tokens` tokens, teacher-forced in one pass): perplexity,
and the share of positions where the greedy next token equals float32's. Speed: the median of
`--steps` single-token decoding steps after a `--cache`-token prefill (the agent's prompts are
about 2,700 tokens; the suffix after the reused system message about 1,300), and the prefill's
seconds. Dynamic int8 is PyTorch's `quantize_dynamic` (activations rounded to int8 too), the
option autorec rejected. Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
import warnings
from pathlib import Path


def variants(loaded):
    import torch

    from autorec import lm

    yield "float32", loaded.model
    yield "int8 weight-only (default)", lm.int8_copy(loaded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantize_dynamic's deprecation notice
        spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
        yield "int8 dynamic (rejected)", torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(loaded.model), spec, dtype=torch.qint8)


def quality(model, ids):
    import torch

    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, :-1].float()
    nll = float(torch.nn.functional.cross_entropy(logits, ids[0, 1:]))
    return logits.argmax(-1), nll


def speed(model, ids, cache_tokens: int, steps: int) -> tuple[float, float]:
    import torch

    from autorec import lm

    argument = lm.cache_argument(model)
    with torch.inference_mode():
        start = time.perf_counter()
        cache = lm.returned_cache(model(input_ids=ids[:, :cache_tokens], use_cache=True))
        prefill = time.perf_counter() - start
        times = []
        for i in range(steps):
            token = ids[:, cache_tokens + i: cache_tokens + i + 1]
            start = time.perf_counter()
            cache = lm.returned_cache(model(input_ids=token, use_cache=True, **{argument: cache}))
            times.append(time.perf_counter() - start)
    return prefill, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=400, help="quality: tokens of README text")
    parser.add_argument("--cache", type=int, default=1300, help="speed: prefill before the steps")
    parser.add_argument("--steps", type=int, default=40, help="speed: decoding steps timed")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int8_decoding.json"))
    args = parser.parse_args()

    import torch

    from autorec import lm

    torch.set_num_threads(args.threads)
    loaded = lm.load_causal_lm()
    text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    if ids.shape[1] < args.cache + args.steps:
        raise SystemExit(f"README.md has {ids.shape[1]} tokens; lower --cache or --steps")
    rows, reference = [], None
    for name, model in variants(loaded):
        greedy, nll = quality(model, ids[:, :args.tokens])
        reference = greedy if reference is None else reference
        prefill, step = speed(model, ids, args.cache, args.steps)
        rows.append({"weights": name, "perplexity": round(float(torch.tensor(nll).exp()), 2),
                     "nll": round(nll, 4),
                     "greedy_agreement": round(float((greedy == reference).float().mean()), 3),
                     "prefill_s": round(prefill, 3), "step_ms": round(1000 * step, 1)})
        print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "int8_decoding", "threads": args.threads, "tokens": args.tokens,
        "cache": args.cache, "steps": args.steps, "results": rows,
        "machine": {"cpus": os.cpu_count(), "load_at_end": [round(x, 2) for x in os.getloadavg()]},
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
