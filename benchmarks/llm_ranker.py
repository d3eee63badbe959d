"""llm_ranker on ML-100K CTR: zero-shot vs LoRA, AUC and throughput on fixed row samples.

Every line scores the same validation and test rows (`--rows` of each, drawn by `--eval-seed`,
as the prompt_templates space does), so lines are comparable with each other; ID models
(`--id-models`, default the mean-label scorer and DeepFM, trained on the whole training split)
are scored on the same rows for scale. Each LoRA step count in `--lora` runs once per k in
`--pairs` (0 is the zero-shot line). One JSON object per line is appended to
benchmarks/results/llm_ranker.jsonl as it finishes (a cut-off run still leaves data).

    python benchmarks/llm_ranker.py --rows 200 --lora 0 64 --pairs 16 64 256 --threads 2
    python benchmarks/llm_ranker.py --rows 64 --history 3 --fields title --lora 0 16
    python benchmarks/llm_ranker.py --split global_time --settings '{"history_length": 3}'

Columns: valid/test AUC and log loss, scored rows per second (validation, warm), mean prompt
tokens, LoRA seconds per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from autorec.data import load_dataset
from autorec.metrics import auc
from autorec.models.llm_ranker.evaluate import eval_rows, fit_and_score

RESULTS = Path(__file__).resolve().parent / "results"


def id_model_line(name: str, data, rows: int, seed: int, llm: dict) -> dict:
    """An ID model of the suite (defaults, whole training split) scored on the sampled rows.
    `llm_hybrid`'s LLM (settings `llm`, zero-shot) scores exactly these rows, plus 256
    training rows."""
    from autorec.trainer import train_model

    settings: dict = {"seed": seed}
    if name == "llm_hybrid":
        settings.update(llm={**llm, "lora_steps": 0}, llm_rows=rows, llm_train_rows=256,
                        llm_seed=seed)  # fmt: skip
    start = time.perf_counter()
    module = train_model(name, data, settings).module.eval().cpu()
    line = {"model": name, "seconds": time.perf_counter() - start}
    for split_name, prefix in (("valid", "valid_"), ("test", "")):
        split = getattr(data, split_name)
        index = eval_rows(split.label, rows, seed)
        with torch.no_grad():
            line[f"{prefix}auc"] = auc(module(split.batch(index)), split.label[index])
            if name == "llm_hybrid":  # its LLM score alone on the same rows (zero-shot AUC)
                score, _ = module.llm_features(split.batch(index))
                line[f"llm_{prefix}auc"] = auc(score, split.label[index])
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
    parser.add_argument("--pairs", type=int, nargs="+", default=[64], help="k training rows for LoRA")
    parser.add_argument("--lora-lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--id-models", nargs="*", default=["mean", "deepfm"],
                        help="ID models scored on the same rows; llm_hybrid is DeepFM with the "
                        "zero-shot LLM score as a feature")
    parser.add_argument("--settings", type=json.loads, default={},
                        help="more llm_ranker settings as JSON, e.g. a searched template")
    parser.add_argument("--label", default="", help="a name for these lines in the results")
    parser.add_argument("--out", type=Path, default=RESULTS / "llm_ranker.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset).task("ctr", split=args.split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    prompt = {"history_length": args.history, "history_selection": args.selection, **args.settings}
    if args.fields:
        prompt["fields"] = args.fields
    for name in args.id_models:
        lines.append(id_model_line(name, data, args.rows, args.eval_seed, prompt))
        record(args, lines[-1])
    runs = [(steps, k) for steps in args.lora for k in (args.pairs if steps else args.pairs[:1])]
    for steps, k in runs:
        settings = {**prompt, "lora_steps": steps, "lora_pairs": k, "lora_lr": args.lora_lr}
        start = time.perf_counter()
        metrics = fit_and_score(data, settings, max_eval_rows=args.rows, eval_seed=args.eval_seed)
        line = {"model": "llm_ranker", **settings, **metrics,
                "seconds": time.perf_counter() - start,
                "lora_seconds_per_step": metrics["train_seconds"] / steps if steps else 0.0}
        lines.append(line)
        record(args, line)
    print(f"{'model':<12} {'lora':>5} {'k':>4} {'valid_auc':>9} {'test_auc':>8} {'rows/s':>7} {'tokens':>6} {'s/step':>6}")
    for line in lines:
        k = line.get("lora_pairs", 0) if line.get("lora_steps") else 0
        print(f"{line['model']:<12} {line.get('lora_steps', 0):>5.0f} {k:>4} {line['valid_auc']:>9.4f} "
              f"{line['auc']:>8.4f} {line.get('rows_per_second', 0):>7.2f} "
              f"{line.get('prompt_tokens', 0):>6.0f} {line.get('lora_seconds_per_step', 0):>6.2f}")


def record(args, line: dict) -> None:
    """Append one finished line to the results file, with what it ran on."""
    with open(args.out, "a") as out:
        out.write(json.dumps({**line, "label": args.label, "rows": args.rows, "split": args.split,
                              "eval_seed": args.eval_seed, "threads": args.threads,
                              "machine": platform.node(), "load": os.getloadavg()[0],
                              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
    main()
