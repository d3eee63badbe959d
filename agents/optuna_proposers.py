"""Baseline proposers that let an Optuna sampler drive a space: `random` and `tpe`.

One ask/tell class serves both; only the sampler differs. Each proposal is one Optuna trial:
`study.ask()`, then `space.sample(trial)` draws the candidate. The engine numbers candidates
only after `propose` returns, so results are matched back to trials by `candidate_hash`.

Reproducibility: the sampler is rebuilt before every ask with a seed derived from (seed, trial
number). What a proposer suggests is then a function of its seed and the study's trials alone,
so a proposer restored from `state_dict` proposes exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import abc
import hashlib
import math
import warnings
from typing import Any, ClassVar

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import TrialState

from autorec.agents.base import CandidateResult, Proposal, ProposalContext, Proposer
from autorec.errors import ConfigError
from autorec.space import candidate_hash

# How many draws one proposal may take before giving up on finding a new candidate: a small or
# nearly exhausted space then yields fewer proposals instead of looping.
MAX_DRAWS = 25
STATE_VERSION = 1

# Optuna logs every created study and finished trial at INFO; autorec reports progress itself.
if optuna.logging.get_verbosity() == optuna.logging.INFO:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


class OptunaProposer(Proposer):
    """Ask/tell over an in-memory Optuna study (direction: maximise fitness)."""

    name: ClassVar[str] = "optuna"
    OPTIONS: ClassVar[dict[str, str]] = {"max_draws": "draws per proposal before giving up"}

    def __init__(self, space, seed: int = 0, **options: Any):
        super().__init__(space, seed)
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            known = ", ".join(self.OPTIONS) or "none"
            raise ConfigError(
                f"proposer '{self.name}': unknown option(s) {', '.join(unknown)}; known: {known}"
            )
        self.options = options
        self.max_draws = int(options.get("max_draws", MAX_DRAWS))
        if self.max_draws < 1:
            raise ConfigError(f"proposer '{self.name}': max_draws must be >= 1")
        self.study = self._new_study()
        self.trial_of: dict[str, int] = {}  # candidate hash -> number of the trial that proposed it

    @abc.abstractmethod
    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The sampler for the next ask, seeded with `seed`."""

    def _new_study(self) -> optuna.Study:
        return optuna.create_study(direction="maximize", sampler=self.make_sampler(self.seed))

    def _ask(self) -> optuna.Trial:
        number = len(self.study.get_trials(deepcopy=False))
        self.study.sampler = self.make_sampler(_derived_seed(self.seed, number))
        return self.study.ask()

    # The proposer interface.

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        # Candidates others put in the archive (the reference, other proposers) are known too.
        seen = {candidate_hash(c.params): c for c in context.archive}
        proposals: list[Proposal] = []
        for _ in range(n):
            proposal = self._propose_one(seen)
            if proposal is None:
                break
            proposals.append(proposal)
        return proposals

    def _propose_one(self, seen: dict[str, Any]) -> Proposal | None:
        for _ in range(self.max_draws):
            trial = self._ask()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    params = self.space.sample(trial).model_dump(mode="json")
            except Exception:
                self._tell(trial.number, None)  # a space bug: leave no trial running
                raise
            key = candidate_hash(params)
            if key not in self.trial_of and key not in seen:
                self.trial_of[key] = trial.number
                return Proposal(params=params, operator=self.name)
            # A repeat: tell Optuna what the first one scored (so the sampler learns it), or
            # fail the trial while that first one is unfinished, and draw again.
            self._tell(trial.number, self._known_value(key, seen))
        return None

    def _known_value(self, key: str, seen: dict[str, Any]) -> float | None:
        number = self.trial_of.get(key)
        if number is not None:
            trial = self.study.get_trials(deepcopy=False)[number]
            return trial.value if trial.state == TrialState.COMPLETE else None
        summary = seen[key]
        return summary.fitness if summary.status == "done" else None

    def withdraw(self, params: dict[str, Any]) -> None:
        """Forget a proposal that will not be evaluated (another operator's won the slot): its
        trial is failed, which Optuna's samplers ignore, and a later draw of the same params is
        a new proposal again."""
        number = self.trial_of.pop(candidate_hash(params), None)
        if number is not None:
            self._tell(number, None)

    def observe(self, result: CandidateResult) -> None:
        number = self.trial_of.get(candidate_hash(result.params))
        if number is None:
            return  # not proposed here
        fitness = result.fitness if result.status == "done" else None
        self._tell(number, fitness, pruned=result.status == "stopped")

    def _tell(self, number: int, value: float | None, pruned: bool = False) -> None:
        if self.study.get_trials(deepcopy=False)[number].state != TrialState.RUNNING:
            return
        if value is not None and math.isfinite(value):
            self.study.tell(number, float(value))
        else:
            # A candidate stopped early by successive halving is Optuna's pruned trial: TPE
            # counts it among the worse configurations, as it would with its own pruner.
            self.study.tell(number, state=TrialState.PRUNED if pruned else TrialState.FAIL)

    # Resume.

    def state_dict(self) -> dict[str, Any]:
        trials = []
        for trial in self.study.get_trials(deepcopy=False):
            trials.append(
                {
                    "number": trial.number,
                    "state": trial.state.name,
                    "value": trial.value,
                    "params": trial.params,
                    "distributions": {
                        name: distribution_to_json(d) for name, d in trial.distributions.items()
                    },
                }
            )
        return {
            "version": STATE_VERSION,
            "proposer": self.name,
            "seed": self.seed,
            "trials": trials,
            "proposed": dict(self.trial_of),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("proposer", self.name) != self.name:
            raise ConfigError(
                f"proposer '{self.name}' cannot resume the state of '{state['proposer']}'"
            )
        self.seed = state.get("seed", self.seed)
        self.study = self._new_study()
        for number, record in enumerate(state.get("trials", [])):
            if record["number"] != number:
                raise ConfigError("proposer state: trials are not numbered 0, 1, 2, ...")
            trial_state = TrialState[record["state"]]
            self.study.add_trial(
                optuna.trial.create_trial(
                    state=trial_state,
                    value=record["value"] if trial_state == TrialState.COMPLETE else None,
                    params=record["params"],
                    distributions={
                        name: json_to_distribution(text)
                        for name, text in record["distributions"].items()
                    },
                )
            )
        self.trial_of = {key: int(number) for key, number in state.get("proposed", {}).items()}


class RandomProposer(OptunaProposer):
    """Independent uniform draws from the space (Optuna's RandomSampler)."""

    name: ClassVar[str] = "random"

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)


class TPEProposer(OptunaProposer):
    """Multivariate TPE; the first `n_startup_trials` finished trials are random draws."""

    name: ClassVar[str] = "tpe"
    OPTIONS: ClassVar[dict[str, str]] = {
        **OptunaProposer.OPTIONS,
        "n_startup_trials": "random draws before TPE models the results (default 8)",
    }

    def __init__(self, space, seed: int = 0, **options: Any):
        self.n_startup_trials = int(options.get("n_startup_trials", 8))
        if self.n_startup_trials < 0:
            raise ConfigError("proposer 'tpe': n_startup_trials must be >= 0")
        super().__init__(space, seed, **options)

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,
                group=True,  # conditional spaces: model each set of co-occurring params jointly
                n_startup_trials=self.n_startup_trials,
            )


def _derived_seed(seed: int, number: int) -> int:
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")

