"""The search loop, independent of Ray: what to evaluate next and what each result means.

Ray Tune asks `next_trial` for work and hands back results through `complete` (see
`autorec.engine.tune_bridge`). The driver is the only writer of the archive. The order of work:
pending evaluations first (the reference's suite, then resumed or unfinished candidates), then new
proposals, while the termination rule allows.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from autorec.agents.base import CandidateResult, CandidateSummary, Proposal, ProposalContext, Proposer
from autorec.archive import Archive
from autorec.errors import AutorecError
from autorec.fitness import (
    candidate_fitness, mean_metrics, member_fitness, non_finite_objectives, raw_objectives,
    why_no_fitness,
)
from autorec.engine.fidelity import RUNG_PREFIX, SuccessiveHalving
from autorec.search_config import SearchConfig
from autorec.space import InvalidCandidate, SearchSpace, SuiteMember, space_file_source
from autorec.engine.worker import ERROR, FINAL, NODE, SECONDS, TIMEOUT, WALL_SECONDS

FINISHED = "FINISHED"  # Tune's Searcher.FINISHED
MAX_EMPTY_ROUNDS = 20  # proposal rounds in a row that yield nothing new before the search gives up
# The proposer's state is written at most this often (and always when the search stops): it is
# resume data, and a write costs more as the state grows (2 ms at 50 trials, 50 ms at 1000).
STATE_SAVE_PERIOD_S = 1.0


class ReferenceFailed(AutorecError):
    """The reference candidate could not be evaluated, so no fitness can be computed."""


class SearchDriver:
    def __init__(
        self,
        config: SearchConfig,
        archive: Archive,
        space: SearchSpace,
        proposer: Proposer,
        run_id: int,
        on_progress: Callable[["SearchDriver"], None] | None = None,
    ):
        self.config, self.archive, self.space, self.proposer = config, archive, space, proposer
        self.run_id = run_id
        self.on_progress = on_progress
        self.members = {m.key: m for m in space.suite()}
        # Runs archived before member keys held options are resumed under their old keys.
        self._legacy_members = {m.base_key: m for m in space.suite()}
        self.started = time.monotonic()
        self.queue: deque[int] = deque()
        self.running: dict[str, int] = {}  # Tune trial id -> evaluation id
        self.stop_reason: str | None = None
        self.fatal: BaseException | None = None  # raised again by the engine after Tune stops
        totals = archive.llm_totals(run_id)
        self.tokens_used = int(totals.get("tokens_in", 0) + totals.get("tokens_out", 0))
        self.cost_used = float(totals.get("cost", 0.0))
        self.empty_rounds = 0
        self.best_fitness: float | None = None
        self.since_improvement = 0
        self._params: dict[int, dict[str, Any]] = {}  # candidate id -> params, for next_trial
        self._reference_metrics: dict[str, dict[str, float]] | None = None  # once all are done
        self._state_due = 0.0
        self._state_dirty = False
        self._reference_id = archive.get_run(run_id).reference_candidate_id
        # A space given as a file travels to the workers as its text: a worker on another node
        # of a cluster has no copy of the user's file.
        self._space_source = space_file_source(config.space)
        # Multi-fidelity: successive halving over epochs, rungs ranked by the partial fitness
        # (fidelity.py).
        self.halving = (
            SuccessiveHalving(space.objectives[0], config.early_stopping_grace,
                              config.early_stopping_eta, score=self._partial_fitness)
            if config.early_stopping else None
        )
        self._early_stops: dict[str, str] = {}  # trial id -> why the scheduler stopped it
        self._stopped_at: dict[int, tuple[str, int, float, int]] = {}  # eval -> member, epoch, value, candidate
        self._load_state()

    # Progress facts for the CLI.

    @property
    def evaluations_created(self) -> int:
        return self._created

    @property
    def evaluations_finished(self) -> int:
        return self._finished

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _load_state(self) -> None:
        """Rebuild counters from the archive, so a resumed run continues where it stopped."""
        self.archive.requeue_running(self.run_id)
        self._created = self._finished = 0
        for candidate in self.archive.candidates(self.run_id):
            for evaluation in self.archive.evaluations_for(candidate.id):
                self._created += 1
                if evaluation.status == "pending":
                    self.queue.append(evaluation.id)
                else:
                    self._finished += 1
                if self.halving is not None and evaluation.metrics:
                    self._restore_rungs(evaluation)
            if candidate.fitness is not None and candidate.id != self._reference_id:
                self._note_fitness(candidate.fitness)
        if self._reference_id is None:
            reference = self.space.reference()
            self._reference_id = self._admit(
                Proposal(params=reference.model_dump(mode="json"), operator="reference"),
                generation=0,
            )
            self.archive.set_reference_candidate(self.run_id, self._reference_id)
            # The user's starting points (a production config, iHAS's dims) come right after
            # the reference, like Optuna's enqueue_trial; a seed equal to it is a duplicate.
            for params in self.config.seed_candidates:
                self._admit(Proposal(params=dict(params), operator="seed"), generation=0)

    # Called by Tune through the searcher.

    def next_trial(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next evaluation's Tune config, None to ask again later, or FINISHED."""
        if not self.queue and self.stop_reason is None:
            self._propose()
        if not self.queue:
            return FINISHED if not self.running and self.stop_reason else None
        evaluation_id = self.queue.popleft()
        evaluation = self.archive.start_evaluation(evaluation_id, trial_id=trial_id)
        params = self._params.get(evaluation.candidate_id)
        if params is None:  # queued before this driver started (a resumed run)
            params = self._params[evaluation.candidate_id] = self.archive.get_candidate(
                evaluation.candidate_id
            ).params
        self.running[trial_id] = evaluation_id
        return {
            "evaluation_id": evaluation_id,
            "candidate_id": evaluation.candidate_id,
            "space": self.config.space,
            "space_source": self._space_source,
            "space_options": self.config.space_options().model_dump(mode="json"),
            "params": params,
            "member": (self.members.get(evaluation.member)
                       or self._legacy_members[evaluation.member]).to_dict(),
            "threads": self.config.threads,
            "gpus": self.config.gpus_per_trial,
            "objectives": list(self.config.objectives),
            "constraints": list(self.config.constraints),
        }

    def on_epoch(self, trial_id: str, result: dict[str, Any]) -> bool:
        """An intermediate report of a running trial; True: stop it (successive halving)."""
        evaluation_id = self.running.get(trial_id)
        if self.halving is None or evaluation_id is None or result.get(FINAL) != 0:
            return False
        epoch, value = result.get("epoch"), result.get(self.halving.metric)
        if epoch is None or value is None:
            return False
        evaluation = self.archive.get_evaluation(evaluation_id)
        if evaluation.candidate_id == self._reference_id:
            return False  # the yardstick of fitness always runs in full
        metrics = {k: float(v) for k, v in result.items()
                   if _is_metric(k) and isinstance(v, (int, float))}
        decision = self.halving.report(evaluation.member, evaluation_id, int(epoch), metrics)
        self._promote_behind(evaluation.member, int(epoch))
        if decision.stop:
            self._early_stops[trial_id] = decision.reason
            self._stopped_at[evaluation_id] = (
                evaluation.member, int(epoch), decision.value, evaluation.candidate_id,
            )
        return decision.stop

    def _partial_fitness(self, member: str, metrics: dict[str, float]) -> float | None:
        """The fitness an evaluation would have if it ended with these metrics: what successive
        halving ranks. An objective an epoch report lacks counts as the reference's value (no
        gain, no loss), so a space that reports only its first objective each epoch is ranked
        by that alone. None until the reference's suite is in."""
        reference = self._reference_done()
        if reference is None or member not in reference:
            return None
        ref = reference[member]
        filled = {o.name: metrics.get(o.name, ref.get(o.name)) for o in self.space.objectives}
        return member_fitness(filled, ref, self.space.objectives)

    def _reference_done(self) -> dict[str, dict[str, float]] | None:
        if self._reference_metrics is None:
            reference = self._metrics_by_member(self.archive.evaluations_for(self._reference_id))
            if len(reference) < len(self.members):
                return None
            self._reference_metrics = reference  # done evaluations never change again
        return self._reference_metrics

    def complete(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        evaluation_id = self.running.pop(trial_id, None)
        if evaluation_id is None:
            return
        result = result or {}
        status, metrics, message = self._outcome(result, error)
        if trial_id in self._early_stops:  # our scheduler stopped it: partial, not failed
            status, message = "stopped", self._early_stops.pop(trial_id)
            metrics = {k: v for k, v in result.items() if _is_metric(k)} or None
        if self.halving is not None and status in ("done", "stopped"):
            member = self.archive.get_evaluation(evaluation_id).member
            metrics = {**(metrics or {}), **self.halving.rung_metrics(member, evaluation_id)}
        if status == "pending":  # stopped by the search's own time budget: not the candidate's fault
            self.archive.requeue_running(self.run_id, evaluation_ids=[evaluation_id])
            return
        evaluation = self.archive.finish_evaluation(
            evaluation_id, status, metrics=metrics, error=message, node=result.get(NODE)
        )
        self._finished += 1
        self._settle(evaluation.candidate_id)
        if self.on_progress:
            self.on_progress(self)

    def interrupted(self) -> None:
        """The search stopped (its end, time budget, Ctrl-C): what was running will run on
        resume, and the proposer's latest state is on record."""
        if self._state_dirty:
            self._save_proposer_state(force=True)
        self.archive.requeue_running(self.run_id)

    def _save_proposer_state(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now >= self._state_due:
            self.archive.save_proposer_state(self.run_id, self.proposer.state_dict())
            self._state_due, self._state_dirty = now + STATE_SAVE_PERIOD_S, False
        else:
            self._state_dirty = True

    # Internals.

    def _outcome(self, result: dict[str, Any], error: bool) -> tuple[str, dict | None, str | None]:
        metrics = {k: v for k, v in result.items() if _is_metric(k)}
        limit = self.config.eval_time_limit
        # The limit comes first: a result (or an error) that arrived after it is never accepted.
        ran = max(float(result.get(key) or 0) for key in (TIMEOUT, SECONDS, WALL_SECONDS))
        if limit and (result.get(TIMEOUT) is not None or ran > limit):
            return "timeout", None, (
                f"evaluation passed its time limit of {limit:g} s (stopped after {ran:.1f} s)"
            )
        if result.get(ERROR):
            return "failed", metrics or None, str(result[ERROR])
        if result.get(FINAL) == 1:
            bad = non_finite_objectives(metrics, self.space.objectives)
            if bad:
                return "failed", metrics, f"objective(s) {', '.join(bad)} missing or not finite"
            return "done", metrics, None
        if error:
            return "failed", metrics or None, "the trial crashed on its worker (see Ray's logs)"
        if limit and result.get("time_total_s", 0) >= limit:
            return "timeout", metrics or None, f"evaluation passed its time limit of {limit:g} s"
        return "pending", None, None

    def _settle(self, candidate_id: int) -> None:
        """When a candidate's suite is all in, give it its fitness (or its failure)."""
        evaluations = self.archive.evaluations_for(candidate_id)
        failed = [e for e in evaluations if e.status in ("failed", "timeout")]
        if failed:
            # One failed member fails the candidate: drop its queued members to save the budget.
            for e in evaluations:
                if e.status == "pending" and e.id in self.queue:
                    self.queue.remove(e.id)
                    self.archive.finish_evaluation(e.id, "failed", error="skipped: another member failed")
                    self._finished += 1
            first = failed[0]
            if candidate_id == self._reference_id:
                raise ReferenceFailed(  # one line; `archive show` has the whole traceback
                    f"the reference candidate failed on {first.member}: {_last_line(first.error)}"
                )
            # The evaluation keeps the whole traceback; the candidate its summary line.
            self._record(candidate_id, "failed", None, {}, f"{first.member}: {_last_line(first.error)}")
            return
        stopped = [e for e in evaluations if e.status == "stopped"]
        if stopped:
            for e in evaluations:  # its other members would be wasted: they wait for promotion
                if e.status == "pending" and e.id in self.queue:
                    self.queue.remove(e.id)
                    self.archive.finish_evaluation(
                        e.id, "stopped", error=f"skipped: {stopped[0].member} was stopped early")
                    self._finished += 1
            if all(e.status in ("done", "stopped") for e in self.archive.evaluations_for(candidate_id)):
                partial = {e.member: e.metrics or {} for e in evaluations if e.metrics}
                self._record(candidate_id, "stopped", None, partial,
                             f"{stopped[0].member}: {stopped[0].error}")
            return
        if any(e.status != "done" for e in evaluations):
            return
        if candidate_id == self._reference_id:
            self._record(candidate_id, "done", 0.0, self._metrics_by_member(evaluations), None)
            for waiting in self.archive.candidates(self.run_id, status="running"):
                self._settle(waiting.id)  # those that finished before the reference did
            return
        reference = self._reference_done()
        if reference is None:
            return  # settled once the reference is in
        member_metrics = self._metrics_by_member(evaluations)
        space = self.space
        fitness = candidate_fitness(
            member_metrics, reference, space.objectives, space.gates, space.constraints
        )
        if fitness is None:
            reason = why_no_fitness(member_metrics, space.objectives, space.gates, space.constraints)
            self._record(candidate_id, "failed", None, member_metrics, reason)
        else:
            self._record(candidate_id, "done", fitness, member_metrics, None)

    def _promote_behind(self, member: str, epoch: int) -> None:
        """Evaluations stopped at this rung that now rank among its best run again in full."""
        waiting = {e: v for e, (m, ep, v, _) in self._stopped_at.items() if m == member and ep == epoch}
        for evaluation_id in self.halving.promotable(member, epoch, waiting):
            candidate_id = self._stopped_at[evaluation_id][3]
            if self.archive.get_candidate(candidate_id).status != "stopped":
                continue  # other members still running; looked at again at the next entry
            for evaluation in self.archive.promote(candidate_id):
                self._stopped_at.pop(evaluation.id, None)
                self.halving.start(evaluation.id)
                self.queue.appendleft(evaluation.id)
                self._finished -= 1

    def _restore_rungs(self, evaluation) -> None:
        """A resumed search: a finished evaluation's rung values, and where it was stopped."""
        self.halving.restore(evaluation.member, evaluation.id, evaluation.metrics)
        if evaluation.status == "stopped":
            rungs = self.halving.rung_metrics(evaluation.member, evaluation.id)
            if rungs:
                key = max(rungs, key=lambda k: int(k[len(RUNG_PREFIX):]))
                self._stopped_at[evaluation.id] = (
                    evaluation.member, int(key[len(RUNG_PREFIX):]), rungs[key],
                    evaluation.candidate_id,
                )

    def _record(self, candidate_id, status, fitness, member_metrics, error) -> None:
        objectives = raw_objectives(member_metrics, self.space.objectives) if member_metrics else {}
        # Test-split figures, kept for the report only: the proposer below never sees them.
        reported = mean_metrics(member_metrics, self.space.reported_metrics) if member_metrics else {}
        candidate = self.archive.set_candidate_result(
            candidate_id, status, fitness, objectives, error, reported=reported
        )
        if candidate_id != self._reference_id:
            if fitness is not None:
                self._note_fitness(fitness)
            else:
                self.since_improvement += 1
        self.proposer.observe(
            CandidateResult(candidate.id, candidate.params, status, fitness, objectives,
                            candidate.operator or "", error)
        )
        self._save_proposer_state()

    def _note_fitness(self, fitness: float) -> None:
        if self.best_fitness is None or fitness > self.best_fitness:
            self.best_fitness, self.since_improvement = fitness, 0
        else:
            self.since_improvement += 1

    @staticmethod
    def _metrics_by_member(evaluations) -> dict[str, dict[str, float]]:
        return {e.member: e.metrics or {} for e in evaluations if e.status == "done"}

    def _check_termination(self) -> str | None:
        config = self.config
        suite = len(self.members)
        if config.budget is not None and self._created + suite > config.budget:
            return f"budget of {config.budget} evaluations used"
        if config.max_time is not None and self.elapsed() >= config.max_time:
            return f"time limit of {config.max_time:g} s reached"
        if config.patience is not None and self.since_improvement >= config.patience:
            return f"no better fitness in {config.patience} candidates"
        if config.max_tokens is not None and self.tokens_used >= config.max_tokens:
            return f"LLM token budget of {config.max_tokens} used"
        if config.max_cost is not None and self.cost_used >= config.max_cost:
            return f"LLM cost budget of {config.max_cost:g} used"
        return None

    def _propose(self) -> None:
        self.stop_reason = self._check_termination()
        if self.stop_reason is not None:
            return
        wanted = max(1, self.config.workers - len(self.running))
        if self.config.budget is not None:
            wanted = min(wanted, (self.config.budget - self._created) // len(self.members))
        proposals = self.proposer.propose(self._context(), wanted)
        admitted = sum(self._admit(p) is not None for p in proposals)
        self._save_proposer_state()
        if admitted:
            self.empty_rounds = 0
            return
        self.empty_rounds += 1
        if not proposals or self.empty_rounds >= MAX_EMPTY_ROUNDS:
            self.stop_reason = "the proposer has nothing new to propose"

    def _admit(self, proposal: Proposal, generation: int | None = None) -> int | None:
        """Record a proposal; queue its suite when it is valid and new. Returns its id if queued."""
        error = proposal.error
        candidate = None
        if error is None:
            try:
                candidate = self.space.validate(proposal.params)
            except InvalidCandidate as err:
                error = str(err)
        # The candidate, its LLM calls and its evaluations are written in one transaction: a
        # crash never leaves a candidate without its queued suite.
        calls = [
            {"backend": c.backend, "model": c.model, "prompt": c.prompt, "response": c.text,
             "tokens_in": c.tokens_in, "tokens_out": c.tokens_out, "latency_s": c.latency_s,
             "cost": c.cost, "error": c.error}
            for c in proposal.llm_calls
        ]
        if candidate is None:
            params = proposal.params if isinstance(proposal.params, dict) else {"raw": proposal.params}
            self.archive.admit(
                self.run_id, params, llm_calls=calls, parents=proposal.parents,
                operator=proposal.operator, rationale=proposal.rationale, status="invalid",
                error=error,
            )
        elif proposal.screened is not None:  # valid, but the proposer spends no evaluation on it
            self.archive.admit(
                self.run_id, candidate.model_dump(mode="json"), llm_calls=calls,
                parents=proposal.parents, operator=proposal.operator,
                rationale=proposal.rationale, status="screened", error=proposal.screened,
            )
            candidate = None
        else:
            row, evaluations = self.archive.admit(
                self.run_id, candidate.model_dump(mode="json"), members=self.members.values(),
                llm_calls=calls, reference=proposal.operator == "reference",
                parents=proposal.parents, operator=proposal.operator, generation=generation,
                rationale=proposal.rationale,
            )
        self.tokens_used += sum(c["tokens_in"] + c["tokens_out"] for c in calls)
        self.cost_used += sum(c["cost"] for c in calls)
        if candidate is None or not evaluations:  # invalid, or a duplicate
            return None
        self._params[row.id] = row.params
        self.queue.extend(e.id for e in evaluations)
        self._created += len(evaluations)
        return row.id

    def _context(self) -> ProposalContext:
        summaries = [
            CandidateSummary(
                id=c.id, params=c.params, status=c.status, fitness=c.fitness,
                objectives=c.objectives or {}, operator=c.operator or "", parents=c.parent_ids,
                generation=c.generation, error=c.error,
            )
            for c in self.archive.candidates(self.run_id)
        ]
        left = None
        if self.config.budget is not None:
            left = self.config.budget - self._created
        return ProposalContext(self.space, self.run_id, summaries, left, self.config.seed)


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _is_metric(key: str) -> bool:
    """Tune adds its own bookkeeping to every result; keep only what the evaluation reported."""
    return key not in _TUNE_KEYS and not key.startswith("autorec_") and not key.startswith("config")


_TUNE_KEYS = {
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "experiment_tag", "should_checkpoint",
}
