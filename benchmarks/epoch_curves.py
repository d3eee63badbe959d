"""Per-epoch validation figures of sequential models on ML-100K (default settings, one thread).

    python benchmarks/epoch_curves.py sasrec semantic_ids --seed 0

Each model trains in its own process, side by side; every epoch's row (loss, valid_* metrics,
wall seconds) goes to benchmarks/results/epoch_curves_MODEL.jsonl as it finishes, then one
`final` row with the test metrics at the best validation epoch. docs/models.md quotes these.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def run(model: str, seed: int, out: Path) -> None:
    import torch

    from autorec.data import load_dataset
    from autorec.trainer import train_model

    torch.set_num_threads(1)
    data = load_dataset("ml-100k").task("sequential")
    start = time.time()
    with out.open("w") as stream:

        def log(row: dict) -> None:
            stream.write(json.dumps({**row, "wall": time.time() - start}) + "\n")
            stream.flush()

        result = train_model(model, data, {"seed": seed, "threads": 1}, on_epoch=log)
        stream.write(json.dumps({
            "final": True, "metrics": result.metrics, "valid": result.valid_metrics,
            "params": result.params, "best_epoch": result.best_epoch,
            "train_seconds": result.train_seconds,
        }) + "\n")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.one:
        run(args.models[0], args.seed, args.out_dir / f"epoch_curves_{args.models[0]}.jsonl")
        return
    children = [
        subprocess.Popen([sys.executable, __file__, model, "--seed", str(args.seed),
                          "--out-dir", str(args.out_dir), "--one"])  # fmt: skip
        for model in args.models
    ]
    sys.exit(max(child.wait() for child in children))


if __name__ == "__main__":
    main()
