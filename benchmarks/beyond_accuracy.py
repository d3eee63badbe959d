"""Beyond-accuracy benchmarks on ML-100K (issue 14): what each knob costs and buys, the fronts a
search finds, and the cold-user AUC of the suite's models.

    python benchmarks/beyond_accuracy.py sweep-diversity  [--epochs 30]
    python benchmarks/beyond_accuracy.py sweep-fairness   [--epochs 5]
    python benchmarks/beyond_accuracy.py front-diversity  [--budget 50] [--max-epochs 30]
    python benchmarks/beyond_accuracy.py front-fairness   [--budget 50] [--max-epochs 5]
                                      [--metric fairness.auc_gap_gender]
    python benchmarks/beyond_accuracy.py cold-start       [--epochs 20] [--models lr,...,llm_ranker]
    python benchmarks/beyond_accuracy.py cost

Each prints a markdown table and writes benchmarks/results/beyond_accuracy_<name>.json. Every
row gives validation figures (what selection reads) and test figures (only reported). The
sweeps train one model and vary one knob; the fronts run a TPE search of the architecture space
with the accuracy objective plus a beyond-accuracy one, and compare the 2-D front
(accuracy x beyond-accuracy, validation) with the run's most accurate candidate. Figures in
docs/beyond_accuracy.md were measured on a loaded two-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SUITE_CTR = ("lr", "mean", "fm", "deepfm", "dcnv2", "din", "dare")


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _save(name: str, payload: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    payload["machine"] = "loaded two-core machine (figures are indicative)"
    (RESULTS / f"beyond_accuracy_{name}.json").write_text(json.dumps(payload, indent=2))


def sweep_diversity(args) -> None:
    """One SASRec, scored under each re-ranker setting: NDCG@10 paid for diversity bought."""
    from autorec.data import load_dataset
    from autorec.trainer import evaluate_trained, train_model

    data = load_dataset("ml-100k").task("sequential")
    start = time.perf_counter()
    trained = train_model("sasrec", data, {"epochs": args.epochs, "seed": args.seed})
    settings = [{}] + [{"rerank_mmr_weight": w} for w in (0.1, 0.3, 0.5, 0.7, 0.9)]
    settings += [{"rerank_target_genres": t} for t in (3, 6, 9, 12)]
    rows = []
    for knob in settings:
        scored = evaluate_trained(trained.module, data, {"extra_metrics": ["diversity"], **knob})
        rows.append(_row(knob, scored, ("ndcg@10", "hr@10", "diversity.intra_list",
                                        "diversity.genres_per_list", "diversity.catalog_coverage")))
    columns = ["knob", "valid_ndcg@10", "valid_diversity.intra_list", "ndcg@10", "hr@10",
               "diversity.intra_list", "diversity.genres_per_list", "diversity.catalog_coverage"]
    print(_table(rows, columns))
    _save("sweep_diversity", {"model": "sasrec", "epochs": args.epochs, "rows": rows,
                              "seconds": time.perf_counter() - start})


def sweep_fairness(args) -> None:
    """FM on ML-100K (user_time), one training per fairness knob value."""
    from autorec.data import load_dataset
    from autorec.trainer import train_model

    data = load_dataset("ml-100k").task("ctr", split=args.split)
    settings = [{}] + [{"fair_orthogonality_weight": w} for w in (1.0, 5.0, 20.0)]
    settings += [{"fair_adversary_weight": w} for w in (1.0, 10.0, 100.0)]
    rows = []
    start = time.perf_counter()
    for knob in settings:
        result = train_model(args.model, data, {"epochs": args.epochs, "seed": args.seed,
                                                "extra_metrics": ["fairness"], **knob})
        scored = {"valid": result.valid_metrics, "test": result.metrics}
        rows.append(_row(knob, scored, ("auc", "fairness.gender_leakage",
                                        "fairness.auc_gap_gender", "fairness.auc_gap_age")))
    columns = ["knob", "valid_auc", "valid_fairness.gender_leakage", "auc",
               "fairness.gender_leakage", "fairness.auc_gap_gender", "fairness.auc_gap_age"]
    print(_table(rows, columns))
    _save("sweep_fairness", {"model": args.model, "split": args.split, "epochs": args.epochs,
                             "rows": rows, "seconds": time.perf_counter() - start})


def _row(knob: dict, scored: dict, names) -> dict:
    row = {"knob": ", ".join(f"{k}={v}" for k, v in knob.items()) or "off"}
    for name in names:
        row[f"valid_{name}"] = scored["valid"].get(name)
        row[name] = scored["test"].get(name)
    return row


def _front(args, name: str, task: str, accuracy: str, extra: str, direction: str,
           settings: dict) -> None:
    """A TPE search on accuracy + `extra`, then its 2-D validation front."""
    import autorec
    from autorec.archive.queries import front_ids

    db = args.db or str(Path(tempfile.mkdtemp()) / "beyond_accuracy.db")
    start = time.perf_counter()
    result = autorec.search(
        "architecture", dataset="ml-100k", task=task, proposer="tpe", budget=args.budget,
        workers=args.workers, db=db, objectives=[f"{extra}:{direction}:{args.weight}"],
        space_settings={"max_epochs": args.max_epochs, **settings},
    )
    seconds = time.perf_counter() - start
    archive = autorec.open_archive(db)
    done = archive.candidates(result.run, status="done")
    valid_acc, valid_extra = f"valid_{accuracy}", f"valid_{extra}"
    ids = front_ids([(c.id, c.objectives) for c in done],
                    [(valid_acc, "max"), (valid_extra, direction)])
    most_accurate = max(done, key=lambda c: c.objectives.get(valid_acc, float("-inf")))
    knob_names = [k for k in (done[0].params if done else {}) if k.startswith(("rerank", "fair"))]
    rows = []
    for c in sorted((c for c in done if c.id in ids), key=lambda c: -c.objectives[valid_acc]):
        row = {"id": c.id, "model": c.params.get("model"),
               "knobs": ", ".join(f"{k}={c.params[k]:.3g}" for k in sorted(c.params)
                                  if k.startswith(("rerank", "fair"))) or "off",
               valid_acc: c.objectives.get(valid_acc), valid_extra: c.objectives.get(valid_extra),
               accuracy: c.reported.get(accuracy), extra: c.reported.get(extra),
               "most accurate": "yes" if c.id == most_accurate.id else ""}
        rows.append(row)
    columns = ["id", "model", "knobs", valid_acc, valid_extra, accuracy, extra, "most accurate"]
    print(f"run {result.run}: {result.evaluations} evaluations in {seconds:.0f} s; "
          f"{len(done)} done; front of {len(rows)}")
    print(_table(rows, columns))
    _save(name, {"run": result.run, "budget": args.budget, "max_epochs": args.max_epochs,
                 "evaluations": result.evaluations, "done": len(done), "seconds": seconds,
                 "front": rows, "knob_params": knob_names,
                 "most_accurate": {"id": most_accurate.id, "params": most_accurate.params,
                                   "objectives": most_accurate.objectives,
                                   "reported": most_accurate.reported}})
    archive.close()


def front_diversity(args) -> None:
    metric = args.metric or "diversity.intra_list"
    _front(args, f"front_{metric}", "sequential", "ndcg@10", metric, "max",
           {"extra_metrics": ["diversity"]})


def front_fairness(args) -> None:
    metric = args.metric or "fairness.gender_leakage"
    _front(args, f"front_{metric}", "ctr", "auc", metric, "min",
           {"extra_metrics": ["fairness"], "models": args.models or ["fm", "deepfm"]})


def cold_start(args) -> None:
    """Test AUC overall, on cold users and on cold items of the global-time split, per model;
    and every model's AUC on one seeded sample of cold-user test rows, the rows the LLM ranker
    (too slow on CPU for all 10,000 test rows) is scored on."""
    import torch

    from autorec.data import load_dataset
    from autorec.metrics import auc
    from autorec.trainer import train_model

    data = load_dataset("ml-100k").task("ctr", split="global_time")
    test = data.test
    known = torch.zeros(data.feature("user_id").vocab_size, dtype=torch.bool)
    known[data.train.columns["user_id"]] = True
    cold = torch.nonzero(~known[test.columns["user_id"]]).squeeze(1)
    generator = torch.Generator().manual_seed(args.seed)
    sample = cold[torch.randperm(len(cold), generator=generator)[: args.sample_rows]].sort().values
    rows = []
    for model in args.models or SUITE_CTR:
        start = time.perf_counter()
        row = {"model": model}
        if model == "llm_ranker":
            module = _llm_ranker(data, json.loads(args.llm_settings))
        else:
            settings = {"epochs": args.epochs, "seed": args.seed, "extra_metrics": ["cold_start"]}
            result = train_model(model, data, settings)
            m, module = result.metrics, result.module
            row.update({"valid_auc": result.valid_metrics["auc"], "auc": m["auc"],
                        "cold_user.auc": m["cold_user.auc"], "cold_item.auc": m["cold_item.auc"],
                        "cold_user.share": m["cold_user.share"]})
        if len(sample):
            module.eval()
            with torch.no_grad():
                logits = module(test.batch(sample)).double()
            row["cold_user.auc (sample)"] = auc(logits, test.label[sample])
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        print(f"{model}: {row}", file=sys.stderr)
    print(_table(rows, ["model", "valid_auc", "auc", "cold_user.auc", "cold_item.auc",
                        "cold_user.auc (sample)", "seconds"]))
    print(f"cold users: {len(cold) / len(test):.1%} of test rows; sample: {len(sample)} of them",
          file=sys.stderr)
    _save("cold_start", {"split": "global_time", "epochs": args.epochs, "rows": rows,
                         "sample_rows": len(sample), "sample_seed": args.seed})


def _llm_ranker(data, settings: dict):
    """The prompt-template issue's LLM ranker, prepared (zero-shot unless lora_steps is set)."""
    from autorec.models.llm_ranker.evaluate import ranker_config
    from autorec.models.llm_ranker.model import LLMRanker

    model = LLMRanker(data.features, ranker_config(settings))
    model.prepare(data)
    return model


def cost(args) -> None:
    """Seconds of validation + test evaluation of one trained model, per extra-metric family."""
    from autorec.data import load_dataset
    from autorec.trainer import evaluate_trained, train_model

    rows = []
    for task, model, options in (("ctr", "deepfm", {"split": "global_time"}),
                                 ("sequential", "sasrec", {})):
        data = load_dataset("ml-100k").task(task, **options)
        module = train_model(model, data, {"epochs": 1, "seed": args.seed}).module
        for families in ([], ["diversity"], ["fairness"], ["cold_start"],
                         ["diversity", "fairness", "cold_start"]):
            start = time.perf_counter()
            evaluate_trained(module, data, {"extra_metrics": families})
            rows.append({"model": model, "extra_metrics": ",".join(families) or "none",
                         "seconds": time.perf_counter() - start})
    print(_table(rows, ["model", "extra_metrics", "seconds"]))
    _save("cost", {"rows": rows})


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["sweep-diversity", "sweep-fairness", "front-diversity",
                                         "front-fairness", "cold-start", "cost"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="fm", help="sweep-fairness: the CTR model")
    parser.add_argument("--split", default="user_time", help="sweep-fairness: the CTR split")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--weight", type=float, default=0.2, help="the extra objective's weight")
    parser.add_argument("--metric", default=None, help="fronts: the beyond-accuracy objective "
                        "(default diversity.intra_list / fairness.gender_leakage)")
    parser.add_argument("--models", type=lambda text: text.split(","), default=None)
    parser.add_argument("--llm-settings", default="{}",
                        help="cold-start: JSON settings for llm_ranker (zero-shot by default)")
    parser.add_argument("--sample-rows", type=int, default=200,
                        help="cold-start: cold-user test rows every model is also scored on")
    parser.add_argument("--db", default=None, help="fronts: the archive (default: a temp file)")
    args = parser.parse_args()
    defaults = {"sweep-diversity": 30, "sweep-fairness": 5, "cold-start": 20}
    args.epochs = args.epochs or defaults.get(args.what, 5)
    args.max_epochs = args.max_epochs or (30 if args.what == "front-diversity" else 5)
    {"sweep-diversity": sweep_diversity, "sweep-fairness": sweep_fairness,
     "front-diversity": front_diversity, "front-fairness": front_fairness,
     "cold-start": cold_start, "cost": cost}[args.what](args)


if __name__ == "__main__":
    main()
