"""Where ReLoop2's gain comes from on ML-100K's global-time split: one trained model, its test AUC
under different error memories.

    python benchmarks/reloop2_ablation.py --seed 0 --out benchmarks/results/reloop2_ablation.json

Trains `reloop2` with its defaults (a DeepFM base; the trainer's own streamed evaluation gives
the "full stream" row), then scores the test split again with the same weights and:
no memory (the DeepFM base), a frozen memory of the training tail, a frozen memory of the
training tail and validation, a memory filled by the test stream alone, the full stream, and the
full stream in a random order (which lets later test rows' labels correct earlier ones: the leak
the trainer's event-time order prevents). Timing-free: AUC only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

from autorec.data import load_dataset
from autorec.data.features import TensorSplit
from autorec.metrics import auc
from autorec.trainer import time_order, train_model


@torch.no_grad()
def _score(model, split: TensorSplit, order: torch.Tensor, write: bool, batch: int) -> torch.Tensor:
    logits = torch.empty(len(split))
    for begin in range(0, len(order), batch):
        index = order[begin : begin + batch]
        rows = split.batch(index)
        logits[index] = model(rows)
        if write:
            model.observe(rows, split.label[index], logits[index])
    return logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reloop2_ablation.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("ml-100k").ctr("global_time")
    result = train_model("reloop2", data, {"seed": args.seed, "threads": 1})
    model = result.module.eval()
    batch = result.config["train"]["eval_batch_size"]
    capacity = model.memory_capacity
    shuffle = torch.Generator().manual_seed(args.seed)

    def run(warm: list[TensorSplit], write_test: bool,
            order: Callable[[TensorSplit], torch.Tensor] = time_order) -> float:  # fmt: skip
        model.reset_memory()
        for split in warm:  # the memory keeps the newest `capacity` rows only
            _score(model, split, order(split)[-capacity:], True, batch)
        logits = _score(model, data.test, order(data.test), write_test, batch)
        return auc(logits, data.test.label)

    random_order = lambda split: torch.randperm(len(split), generator=shuffle)  # noqa: E731
    rows = {
        "trainer's streamed evaluation": result.metrics["auc"],
        "no memory (the deepfm base)": run([], False),
        "training tail, frozen": run([data.train], False),
        "training tail + validation, frozen during test": run([data.train, data.valid], False),
        "test stream only (empty at start)": run([], True),
        "full stream: training tail, validation, test": run([data.train, data.valid], True),
        "full stream in random order (leaks later labels)": run(
            [data.train, data.valid], True, random_order
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seed": args.seed, "test_auc": rows}, indent=2))
    for name, value in rows.items():
        print(f"{value:.4f}  {name}")


if __name__ == "__main__":
    main()
