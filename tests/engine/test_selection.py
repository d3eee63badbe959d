"""Selection reads the validation split only: test metrics are stored and shown, never used.

The same search is driven twice with identical validation metrics and very different test
metrics (in the second, test AUC ranks the candidates in reverse). Fitness, ranking, the
proposer's observations and every prompt the LLM is sent must be identical; the test figures
must still be on record, beside the validation ones.
"""

from __future__ import annotations

import json

from autorec.agents import load_proposer
from autorec.agents.llm.base import Completion, LLMBackend
from autorec.archive import Archive
from autorec.engine.driver import SearchDriver
from autorec.engine.worker import FINAL
from autorec.search_config import SearchConfig
from autorec.space import load_space


class Replies(LLMBackend):
    """Cycles through fixed replies and keeps every prompt it was sent."""

    name = "local"
    constrained = True

    def __init__(self, replies):
        super().__init__("scripted")
        self.replies, self.prompts = replies, []

    def complete(self, messages, schema=None, *, max_tokens=512, temperature=0.0, seed=None):
        self.prompts.append(json.dumps(messages))
        text = self.replies[(len(self.prompts) - 1) % len(self.replies)]
        return Completion(text, self.name, self.model, messages, tokens_in=100, tokens_out=20)


def drive(tmp_path, test_auc):
    """A 7-evaluation agent search through the real driver; `test_auc(valid_auc)` plants the
    test metric. Returns what selection produced and what the LLM saw."""
    space = load_space("architecture")
    reference = space.reference().model_dump(mode="json")
    replies = [json.dumps({**reference, "lr": lr, "rationale": "try"})
               for lr in (0.004, 0.0005, 0.002, 0.008, 0.0002, 0.003)]
    backend = Replies(replies)
    config = SearchConfig(space="architecture", proposer="agent", budget=7, seed=0)
    tmp_path.mkdir()
    archive = Archive(tmp_path / "runs.db")
    run = archive.create_run("architecture", "agent", config=config.model_dump(mode="json"))
    proposer = load_proposer("agent", space, seed=0, backend=backend, operators="llm")
    observed = []
    original_observe = proposer.observe
    proposer.observe = lambda result: (observed.append(result), original_observe(result))[1]
    driver = SearchDriver(config, archive, space, proposer, run.id)
    for i in range(30):
        trial = driver.next_trial(f"t{i}")
        if trial is None:
            continue
        if not isinstance(trial, dict):
            break
        lr = trial["params"]["lr"]
        valid = 0.75 - abs(lr - 0.003) * 10  # best near lr 0.003
        driver.complete(f"t{i}", {"valid_auc": valid, "auc": test_auc(valid),
                                  "valid_logloss": 0.5, "logloss": 0.5,
                                  "params": 1000.0, FINAL: 1}, False)
    rows = archive.candidates(run.id)
    return {
        "fitness": [(r.id, r.fitness) for r in rows],
        "ranking": [r.id for r in archive.top(run.id, n=10)],
        "objectives": [r.objectives for r in rows],
        "observed": [(o.candidate_id, o.fitness, o.objectives) for o in observed],
        "prompts": backend.prompts,
        "best": driver.best_fitness,
    }, rows


def test_test_metrics_change_no_fitness_rank_or_prompt(tmp_path):
    honest, rows = drive(tmp_path / "a", test_auc=lambda valid: valid - 0.01)
    reversed_, rows_b = drive(tmp_path / "b", test_auc=lambda valid: 1.5 - valid)
    assert len(honest["prompts"]) >= 3 and len(honest["fitness"]) >= 5
    assert honest == reversed_
    # Nothing of the test split reached the proposer or the prompts...
    for prompt in reversed_["prompts"]:
        for row in rows_b:
            if row.reported:
                assert f"{row.reported['auc']:.4f}"[:6] not in prompt
    # ...yet the test figures are on record, beside the validation ones.
    done = [r for r in rows_b if r.status == "done"]
    assert all(r.reported["auc"] == 1.5 - r.objectives["valid_auc"] for r in done)
    assert all("auc" not in r.objectives for r in done)
