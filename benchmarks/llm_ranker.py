"""llm_ranker on ML-100K CTR: zero-shot vs LoRA, AUC and throughput on fixed row samples.

Every line scores the same validation and test rows (`--rows` of each, drawn by `--eval-seed`,
as the prompt_template space does), so lines are comparable with each other; the mean-label
scorer (`mean`) is scored on the same rows for scale. One JSON object per line is appended to
benchmarks/results/llm_ranker.jsonl as it finishes (a cut-off run still leaves data).

    python benchmarks/llm_ranker.py --rows 200 --lora 0 64 --pairs 64 --threads 2
    python benchmarks/llm_ranker.py --rows 64 --history 3 --fields title --lora 0 16

Columns: valid/test AUC and log loss, scored rows per second (validation, warm), mean prompt
tokens, LoRA seconds per step.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from autorec.data import load_dataset
from autorec.metrics import auc
from autorec.models.llm_ranker.evaluate import eval_rows, fit_and_score

RESULTS = Path(__file__).resolve().parent / "results"


def mean_label_line(data, rows: int, seed: int) -> dict:
    """The user-mean plus item-mean scorer on the same sampled rows."""
    from autorec.trainer import train_model

    module = train_model("mean", data, {}).module.eval()
    line = {"model": "mean"}
    for split_name, prefix in (("valid", "valid_"), ("test", "")):
        split = getattr(data, split_name)
        index = eval_rows(split.label, rows, seed)
        with torch.no_grad():
            line[f"{prefix}auc"] = auc(module(split.batch(index)), split.label[index])
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--split", default="user_time")
    parser.add_argument("--rows", type=int, default=200, help="validation and test rows each")
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--history", type=int, default=5, help="history length L")
    parser.add_argument("--selection", default="recent", choices=["recent", "similar"])
    parser.add_argument("--fields", nargs="*", default=None, help="item fields (default: all)")
    parser.add_argument("--lora", type=int, nargs="+", default=[0, 64], help="LoRA steps; 0 = zero-shot")
    parser.add_argument("--pairs", type=int, default=64, help="k training rows for LoRA")
    parser.add_argument("--lora-lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "llm_ranker.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset).task("ctr", split=args.split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines = [mean_label_line(data, args.rows, args.eval_seed)]
    for steps in args.lora:
        settings = {"history_length": args.history, "history_selection": args.selection,
                    "lora_steps": steps, "lora_pairs": args.pairs, "lora_lr": args.lora_lr}
        if args.fields:
            settings["fields"] = args.fields
        start = time.perf_counter()
        metrics = fit_and_score(data, settings, max_eval_rows=args.rows, eval_seed=args.eval_seed)
        line = {"model": "llm_ranker", **settings, **metrics,
                "seconds": time.perf_counter() - start,
                "lora_seconds_per_step": metrics["train_seconds"] / steps if steps else 0.0}
        lines.append(line)
        with open(args.out, "a") as out:
            out.write(json.dumps({**line, "rows": args.rows, "split": args.split,
                                  "threads": args.threads, "machine": platform.node()}) + "\n")
    print(f"{'model':<12} {'lora':>5} {'valid_auc':>9} {'test_auc':>8} {'rows/s':>7} {'tokens':>6} {'s/step':>6}")
    for line in lines:
        print(f"{line['model']:<12} {line.get('lora_steps', 0):>5.0f} {line['valid_auc']:>9.4f} "
              f"{line['auc']:>8.4f} {line.get('rows_per_second', 0):>7.2f} "
              f"{line.get('prompt_tokens', 0):>6.0f} {line.get('lora_seconds_per_step', 0):>6.2f}")


if __name__ == "__main__":
    main()
