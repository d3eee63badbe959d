"""The three iHAS stages end to end: search, cluster, retrain, and the routed model's scores.

Every choice is made on validation rows (each group model's epoch; the search stage makes none:
its schedule runs to the end); test metrics are computed once, for the report.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import torch

from autorec.data.features import CTRData
from autorec.ihas.cluster import assign, cluster
from autorec.ihas.retrain import SPLITS, retrain
from autorec.ihas.router import Router, score
from autorec.ihas.search import SearchOutcome, gate_probabilities, run_search
from autorec.ihas.settings import IhasSettings
from autorec.ihas.gated_embedding import install_gates
from autorec.trainer import TrainResult, build_model, split_settings


@dataclasses.dataclass
class IhasRun:
    report: dict[str, Any]
    router: Router
    group_results: list[TrainResult]
    groups: dict[str, torch.Tensor]  # split -> group of every row
    search: SearchStage  # reusable for another number of groups


@dataclasses.dataclass
class SearchStage:
    outcome: SearchOutcome
    probabilities: dict[str, torch.Tensor]  # split -> [N, G] keep-probabilities
    valid: dict[str, float]  # the gated model's validation metrics
    seconds: float


def check_gatable(model: str, data: CTRData, settings: IhasSettings) -> None:
    """A model without field embeddings fails here, before anything trains."""
    install_gates(build_model(model, data, split_settings(model, {}, "ctr")[0]), settings)


def search_stage(model: str, data: CTRData, settings: IhasSettings) -> SearchStage:
    check_gatable(model, data, settings)
    start = time.perf_counter()
    outcome = run_search(model, data, settings)
    probabilities = {name: gate_probabilities(outcome.model, getattr(data, name)) for name in SPLITS}
    valid = score(outcome.model, data.valid)
    return SearchStage(outcome, probabilities, valid, time.perf_counter() - start)


def run_ihas(
    model: str,
    data: CTRData,
    groups: int,
    settings: IhasSettings,
    on_stage: Callable[[str], None] | None = None,
    searched: SearchStage | None = None,
) -> IhasRun:
    """All three stages; pass `searched` (an earlier run's `.search`, same model, data and
    settings) to cluster and retrain for another number of groups without searching again."""
    say = on_stage or (lambda _stage: None)
    if searched is None:
        check_gatable(model, data, settings)
        say("search")
        searched = search_stage(model, data, settings)
    seconds = {"search": searched.seconds}
    search, probabilities = searched.outcome, searched.probabilities
    layout = search.gates.layout

    say("cluster")
    start = time.perf_counter()
    found = cluster(probabilities["train"], layout, groups, settings.seed, settings.min_group_rows)
    everyone = cluster(probabilities["train"], layout, 1, settings.seed) if groups > 1 else found
    assignment = {name: assign(probabilities[name], found.centroids) for name in SPLITS}
    seconds["cluster"] = time.perf_counter() - start

    say("retrain")
    start = time.perf_counter()
    results = retrain(model, data, assignment, found.dims, settings)
    modules = [r.module for r in results]
    router = Router(search.model, found.centroids, modules)  # type: ignore[arg-type]
    valid, test = score(router, data.valid), score(router, data.test)
    seconds["retrain"] = time.perf_counter() - start

    kept = layout.kept_widths(layout.deterministic(probabilities["train"]))
    report = {
        "model": model,
        "dataset": data.dataset,
        "split_hash": data.split_hash,
        "groups": groups,
        "search": {
            "valid_auc": searched.valid["auc"],
            "width": settings.width,
            "epochs": len(search.result.history),
            "train_seconds": search.result.train_seconds,
            "embedding_params": search.gates.parameter_count(),
            "mean_kept_dims": {f: float(kept[:, i].mean()) for i, f in enumerate(layout.fields)},
            "distinct_patterns": found.distinct_patterns,
        },
        "global_dims": everyone.dims[0],
        "group_list": [
            {
                "group": g,
                "rows": {name: int((assignment[name] == g).sum()) for name in SPLITS},
                "dims": found.dims[g],
                "valid_auc": r.valid_metrics["auc"],
                "best_epoch": r.best_epoch,
                "embedding_params": r.embedding_params,
            }
            for g, r in enumerate(results)
        ],
        "routed": {
            "valid_auc": valid["auc"],
            "valid_logloss": valid["logloss"],
            "auc": test["auc"],
            "logloss": test["logloss"],
            "embedding_params": sum(r.embedding_params for r in results),
            "router_params": router.routing_params(),
        },
        "seconds": seconds,
        "settings": settings.model_dump(),
    }
    return IhasRun(report, router, results, assignment, searched)
