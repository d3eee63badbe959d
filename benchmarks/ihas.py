"""iHAS against the full-width model: validation and test AUC, embedding parameters, per field.

    OMP_NUM_THREADS=1 python benchmarks/ihas.py --dataset ml-100k --model deepfm --groups 1 2 3 4 \\
        --seeds 0 --out benchmarks/results/ihas_ml-100k.json
    OMP_NUM_THREADS=1 python benchmarks/ihas.py --dataset synthetic --model fm --set lr=0.005 \\
        --groups 1 2 3 4 --seeds 0 --out benchmarks/results/ihas_synthetic.json

Per seed: two full-width models (every field at the embedding_dims space's reference width 16,
and every field at the search stage's width, `autorec train` defaults otherwise) and one iHAS
search stage, clustered and retrained for every K in
`--groups` (a K the gates cannot support is recorded with its error). Choices are made on
validation rows only; test AUC is reported beside. The table printed at the end is the one in
docs/ihas.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from autorec.cli.settings import parse_assignments
from autorec.data import load_dataset
from autorec.errors import AutorecError
from autorec.ihas.pipeline import run_ihas, search_stage
from autorec.ihas.settings import ihas_settings
from autorec.search_spaces.embedding_dims import REFERENCE_DIM
from autorec.trainer import train_model


def full_width(model: str, data, settings, width: int) -> dict:
    train = {**settings.train_settings(), "embedding_dim": width,
             "epochs": settings.retrain_epochs}  # fmt: skip
    result = train_model(model, data, train)
    return {
        "variant": f"every field {width}",
        "valid_auc": result.valid_metrics["auc"],
        "auc": result.metrics["auc"],
        "embedding_params": result.embedding_params,
        "seconds": result.train_seconds,
    }


def ihas_rows(model: str, data, settings, groups: list[int]) -> list[dict]:
    rows, searched = [], None
    for k in groups:
        started = time.perf_counter()
        try:
            run = run_ihas(model, data, k, settings, searched=searched)
        except AutorecError as err:
            rows.append({"variant": f"iHAS K={k}", "error": str(err)})
            continue
        searched = run.search
        report = run.report
        rows.append({
            "variant": f"iHAS K={k}",
            "valid_auc": report["routed"]["valid_auc"],
            "auc": report["routed"]["auc"],
            "embedding_params": report["routed"]["embedding_params"],
            "router_params": report["routed"]["router_params"],
            "seconds": time.perf_counter() - started,
            "search": report["search"],
            "global_dims": report["global_dims"],
            "groups": [{"rows": g["rows"]["train"], "dims": g["dims"]} for g in report["group_list"]],
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--model", default="deepfm")
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data = load_dataset(args.dataset).task("ctr")
    results = []
    for seed in args.seeds:
        settings = ihas_settings({**parse_assignments(args.assignments), "seed": seed})
        rows = [full_width(args.model, data, settings, REFERENCE_DIM),
                full_width(args.model, data, settings, settings.width)]  # fmt: skip
        for row in [*rows, *ihas_rows(args.model, data, settings, args.groups)]:
            results.append({"seed": seed, **row})
            print(json.dumps({k: v for k, v in results[-1].items() if k != "search"}), flush=True)
    payload = {
        "dataset": args.dataset, "model": args.model, "settings": args.assignments,
        "note": "measured on a loaded machine (shared 2 cores); seconds are indicative only",
        "results": results,
    }  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(payload, indent=2))
    print(f"\n{'variant':<18} {'seed':>4} {'valid auc':>9} {'test auc':>9} {'emb params':>10} {'router':>8}")
    for r in results:
        if "error" in r:
            print(f"{r['variant']:<18} {r['seed']:>4}  refused: {r['error']}")
            continue
        print(f"{r['variant']:<18} {r['seed']:>4} {r['valid_auc']:>9.4f} {r['auc']:>9.4f} "
              f"{r['embedding_params']:>10,} {r.get('router_params', 0):>8,}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
