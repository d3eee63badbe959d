"""Archives for the report tests, written through the Archive API exactly as the driver writes a
search: admitted candidates with their suite, evaluations started and finished, fitness and
objectives (validation) and reported test figures set, failures with tracebacks, LLM calls."""

from __future__ import annotations

import random

from autorec.archive import Archive

OPERATORS = ["tpe", "mutate", "llm:refine", "llm:combine"]
CONTRACT = {
    "name": "toy", "version": "1",
    "objectives": [{"name": "valid_auc", "direction": "max", "weight": 1.0},
                   {"name": "params", "direction": "min", "weight": 0.1}],
    "gates": [], "selection_metrics": ["valid_auc", "params"],
    "reported_metrics": ["auc", "logloss"], "description": "a toy space for report tests",
}
TRACEBACK = ("Traceback (most recent call last):\n  File \"worker.py\", line 3, in evaluate\n"
             "RuntimeError: {}")


def fill(archive: Archive, name: str, n: int = 40, seed: int = 0, llm: bool = True,
         rationale: str | None = None, finish: bool = True) -> int:
    """A run of `n` proposals after its reference; returns the run id."""
    rng = random.Random(seed)
    run = archive.create_run("toy", "agent", name=name, seed=seed, space_contract=CONTRACT)
    member = [("fm", "ml-100k", "ctr")]
    done: list[int] = []

    def evaluate(cid: int, auc: float, size: float, fail: str | None) -> None:
        [e] = archive.evaluations_for(cid)
        archive.start_evaluation(e.id)
        if fail:
            archive.finish_evaluation(e.id, "failed", error=TRACEBACK.format(fail))
            archive.set_candidate_result(cid, "failed", error=fail)
            return
        archive.finish_evaluation(e.id, "done", {"valid_auc": auc, "auc": auc - 0.01,
                                                 "logloss": 0.5, "params": size})
        fitness = (auc - 0.70) / 0.70 - 0.1 * (size - 1000) / 1000
        archive.set_candidate_result(cid, "done", fitness=fitness,
                                     objectives={"valid_auc": auc, "params": size},
                                     reported={"auc": auc - 0.01, "logloss": 0.5})
        done.append(cid)

    ref, _ = archive.admit(run.id, {"dim": 16}, members=member, reference=True,
                           operator="reference")
    evaluate(ref.id, 0.70, 1000.0, None)
    for i in range(n):
        op = OPERATORS[i % len(OPERATORS)]
        parents = rng.sample(done, k=min(len(done), 2 if op == "llm:combine" else 1))
        calls = []
        if op.startswith("llm") and llm:
            calls = [{"backend": "local", "model": "smollm2", "prompt": "propose",
                      "response": "{}", "tokens_in": 900 + 10 * i, "tokens_out": 40 + i,
                      "latency_s": 20.0 + i % 7, "cost": 0.001 * (1 + i % 3)}]
        params = {"dim": 4 + i, "dropout": round(rng.random(), 3)}
        if op == "llm:refine" and i % 8 == 2:  # an invalid proposal, recorded with its reason
            archive.admit(run.id, {"dim": -1, "i": i}, llm_calls=calls, parents=parents,
                          operator=op, status="invalid", error="dim: must be >= 1",
                          rationale=rationale)
            continue
        c, _ = archive.admit(run.id, params, members=member, llm_calls=calls, parents=parents,
                             operator=op, rationale=rationale or f"try dim {4 + i}")
        fail = "CUDA out of memory" if i % 9 == 5 else ("NaN loss" if i % 13 == 7 else None)
        if finish or i < n // 2:
            evaluate(c.id, 0.70 + 0.08 * rng.random(), 500.0 + 50 * rng.randrange(20), fail)
    archive.set_run_status(run.id, "finished" if finish else "running")
    return run.id
