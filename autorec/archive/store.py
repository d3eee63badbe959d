"""The Archive: every run, candidate, evaluation and LLM call of a search, in one database."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from autorec.archive import connect, migrations, queries
from autorec.secrets import protect_logs, redact, redact_data
from autorec.archive.errors import ArchiveError, NotFoundError
from autorec.archive.queries import BestSoFar
from autorec.archive.tables import (
    Candidate,
    CandidateStatus,
    Evaluation,
    EvaluationStatus,
    LLMCall,
    Run,
    RunStatus,
    from_json,
    params_hash,
    to_json,
    utcnow,
)

_S = TypeVar("_S", RunStatus, CandidateStatus, EvaluationStatus)
_FINISHED_EVALUATION = {
    EvaluationStatus.DONE.value,
    EvaluationStatus.FAILED.value,
    EvaluationStatus.TIMEOUT.value,
    EvaluationStatus.STOPPED.value,
}


def _status(kind: type[_S], value: str) -> str:
    try:
        return kind(value).value
    except ValueError:
        allowed = ", ".join(s.value for s in kind)
        raise ValueError(f"{kind.__name__} must be one of {allowed}, not {value!r}") from None


def _plain(value: Any) -> Any:
    """What reading `value` back from a JSON column gives (tuples as lists, models as dicts)."""
    return None if value is None else from_json(to_json(value))


MAX_RUN_NAME = 200


def check_run_name(name: str) -> str:
    """A run name is one line of printable text (it is printed, and written into exported YAML):
    newlines, tabs and other control or formatting characters are refused (ValueError)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a run name must be non-empty text")
    if len(name) > MAX_RUN_NAME:
        raise ValueError(f"a run name has at most {MAX_RUN_NAME} characters, not {len(name)}")
    bad = sorted({repr(ch) for ch in name if not ch.isprintable()})
    if bad:
        raise ValueError(f"a run name must be printable text on one line; it holds {', '.join(bad)}")
    return name


def collect_environment() -> dict[str, Any]:
    """Where a run ran: interpreter, platform, host, and the versions of the libraries used."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "argv": sys.argv,
    }
    for dist in ("autorec", "torch", "ray", "optuna", "triton", "transformers", "sqlmodel"):
        try:
            env[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return env


class Archive:
    """A search archive in any SQLAlchemy database; a bare path means a SQLite file.

    Opening checks the schema: an archive from a newer autorec is refused, an older one is
    migrated, a file that is not SQLite is refused untouched. With ``create=False`` (read-only
    views such as ``autorec archive ls``) a missing archive is an error, not a new empty file.

    Every method runs in its own short transaction and returns detached rows (Run, Candidate,
    Evaluation, LLMCall) or plain data: read their attributes freely; changing them changes
    nothing in the database. Several processes may write one SQLite file at once (WAL, a busy
    timeout and immediate write transactions), and readers never block the writer.

    A SQLite file that cannot be written is opened read-only when ``create=False`` (reviewing
    an archive someone shared, or one on a read-only mount), and refused with one line when
    ``create=True`` (a search). ``readonly=True`` asks for a read-only open explicitly. Every
    text stored passes `autorec.secrets.redact`: no API key or password reaches the file.
    """

    def __init__(
        self, url: str | os.PathLike[str] = "runs.db", *, create: bool = True,
        readonly: bool | None = None,
    ):
        self.url = os.fspath(url)
        protect_logs()  # what the search logs passes the same redaction as what it stores
        self._target = connect.resolve(url)
        connect.check_file(self._target, create)
        reason = None if readonly else connect.unwritable(self._target)
        if reason and (create or readonly is False):
            raise ArchiveError(
                f"cannot write the archive {self._target.label}: {reason}; review it with "
                "`autorec archive ...`, or copy it somewhere writable to search"
            )
        if readonly or reason:
            if self._target.path is None or not self._target.path.exists():
                raise ArchiveError(f"no archive at {self._target.label}")
            self._target = self._target.as_readonly()
        self._engine = connect.make_engine(self._target)
        try:
            migrations.open_schema(self._engine, self._target, create and not self.readonly)
        except sa.exc.OperationalError as exc:
            self._engine.dispose()
            raise ArchiveError(
                f"cannot open the archive {self.location}: {connect.one_line(exc.orig)}"
            ) from None
        except ArchiveError as err:
            self._engine.dispose()
            if "\n" in str(err):  # a database server's message spans lines; the CLI prints one
                raise ArchiveError(connect.one_line(err)) from None
            raise
        except BaseException:
            self._engine.dispose()
            raise
        self._writer = self._engine.execution_options(**{connect.WRITE: True})

    @property
    def readonly(self) -> bool:
        """Opened read-only: reads work, any write raises ArchiveError."""
        return self._target.readonly

    @property
    def location(self) -> str:
        """The file path of a SQLite archive, else the URL without its password."""
        return self._target.label

    def __repr__(self) -> str:
        return f"Archive({self.location!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles (Ray checkpoints a searcher that holds one) carry the location, not connections.
        return (_reopen, (str(self._target.path or self.url),))

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        if self.readonly:
            raise ArchiveError(f"the archive {self.location} is open read-only")
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def _require_run(self, s: Session, run_id: int) -> None:
        """Check a run exists without loading its row (whose proposer_state may be large)."""
        if s.exec(select(Run.id).where(Run.id == run_id)).first() is None:
            raise NotFoundError("run", run_id, self.location)

    def _get(self, s: Session, table: type, key: int, kind: str) -> Any:
        row = s.get(table, key)
        if row is None:
            raise NotFoundError(kind, key, self.location)
        return row

    # runs

    def create_run(
        self,
        space: str,
        proposer: str,
        *,
        name: str | None = None,
        space_version: str = "",
        config: Mapping[str, Any] | Any = None,
        seed: int | None = None,
        environment: Mapping[str, Any] | None = None,
        space_contract: Mapping[str, Any] | None = None,
    ) -> Run:
        """Start a run. Without a name one is made from the space, proposer and time.

        `config` is a dict or a pydantic model (stored as its JSON dump); `environment` defaults
        to `collect_environment()`.
        """
        with self._write() as s:
            if name is None:
                name = self._fresh_name(s, f"{space}-{proposer}-{utcnow():%Y%m%d-%H%M%S}")
            else:
                try:
                    check_run_name(name)
                except ValueError as err:
                    raise ArchiveError(str(err)) from None
                if s.exec(select(Run.id).where(Run.name == name)).first() is not None:
                    raise ArchiveError(f"a run named {name!r} already exists in {self.location}")
            run = Run(
                name=name,
                space=space,
                space_version=str(space_version),
                proposer=proposer,
                config=redact_data(_plain(config)) or {},
                seed=seed,
                environment=redact_data(
                    _plain(collect_environment() if environment is None else environment)
                ),
                space_contract=_plain(space_contract),
            )
            s.add(run)
        return run

    @staticmethod
    def _fresh_name(s: Session, base: str) -> str:
        taken = set(s.exec(select(Run.name).where(col(Run.name).startswith(base))).all())
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        return name

    def get_run(self, name_or_id: str | int) -> Run:
        """A run by name, or by id (an int, or a string of digits that is no run's name)."""
        with self._read() as s:
            run = s.exec(select(Run).where(Run.name == str(name_or_id))).first()
            if run is None and str(name_or_id).isdigit():
                run = s.get(Run, int(name_or_id))
            if run is None:
                recent = s.exec(select(Run.name).order_by(col(Run.id).desc()).limit(5)).all()
                hint = f"recent runs: {', '.join(recent)}" if recent else "it holds no runs"
                raise NotFoundError("run", name_or_id, self.location, hint)
            return run

    def list_runs(self) -> list[Run]:
        """Every run, oldest first."""
        with self._read() as s:
            return list(s.exec(select(Run).order_by(col(Run.id))).all())

    def set_run_status(self, run_id: int, status: str) -> Run:
        """Mark a run; finished/failed/interrupted stamp finished_at, running (resume) clears it."""
        status = _status(RunStatus, status)
        with self._write() as s:
            run = self._get(s, Run, run_id, "run")
            run.status = status
            run.finished_at = None if status == RunStatus.RUNNING.value else utcnow()
        return run

    def set_reference_candidate(self, run_id: int, candidate_id: int) -> Run:
        with self._write() as s:
            run = self._get(s, Run, run_id, "run")
            self._get(s, Candidate, candidate_id, "candidate")
            run.reference_candidate_id = candidate_id
        return run

    def save_proposer_state(self, run_id: int, state: Mapping[str, Any]) -> None:
        """Keep the proposer's state_dict (JSON data) for resume; replaces the previous one."""
        with self._write() as s:
            # An UPDATE, not a loaded row: the old state (hundreds of KiB in a long TPE run) is
            # neither read nor parsed just to be replaced.
            done = s.execute(
                sa.update(Run).where(col(Run.id) == run_id).values(proposer_state=_plain(state))
            )
            if done.rowcount == 0:
                raise NotFoundError("run", run_id, self.location)

    def load_proposer_state(self, run_id: int) -> dict[str, Any] | None:
        with self._read() as s:
            return self._get(s, Run, run_id, "run").proposer_state

    # candidates

    def add_candidate(
        self,
        run_id: int,
        params: Mapping[str, Any] | Any,
        *,
        parents: Iterable[int] = (),
        operator: str | None = None,
        generation: int | None = None,
        rationale: str | None = None,
        status: str = CandidateStatus.PENDING.value,
        error: str | None = None,
    ) -> Candidate:
        """Record a proposal and return it; duplicates are recorded too, never raised.

        When the run already holds a candidate with the same params (same `params_hash`), the
        new row gets status "duplicate", `duplicate_of` = the original's id and an error saying
        so, whatever `status` asked for: the proposal (and the LLM call that made it) stays on
        record, and the caller checks ``c.status == "duplicate"`` instead of catching anything.
        Use `candidate_by_hash` to look for an original before proposing.

        `params` is a dict or the space's pydantic Candidate. `generation` defaults to one more
        than the deepest parent's (0 without parents). Record an invalid proposal with
        status "invalid" and the validation error.
        """
        with self._write() as s:
            return self._insert_candidate(
                s, run_id, params, parents, operator, generation, rationale, status, error
            )

    def _insert_candidate(
        self, s: Session, run_id: int, params: Any, parents: Iterable[int] = (),
        operator: str | None = None, generation: int | None = None, rationale: str | None = None,
        status: str = CandidateStatus.PENDING.value, error: str | None = None,
    ) -> Candidate:
        status = _status(CandidateStatus, status)
        data = to_json(params)
        key = params_hash(data)
        parent_ids = [int(p) for p in parents]
        self._require_run(s, run_id)
        generations = self._parent_generations(s, parent_ids)
        if generation is None:
            generation = 1 + max(generations) if generations else 0
        original = self._original(s, run_id, key)
        candidate = Candidate(
            run_id=run_id,
            hash=key,
            params=from_json(data),
            parent_ids=parent_ids,
            operator=operator,
            generation=generation,
            rationale=redact(rationale),
            status=status,
            error=redact(error),
        )
        if original is not None:
            candidate.duplicate_of = original.id
            # A repeated invalid proposal stays invalid with its own reason: the reason is
            # what the proposer (and the person reading the archive) needs to see.
            if status != CandidateStatus.INVALID.value:
                candidate.status = CandidateStatus.DUPLICATE.value
                candidate.error = f"duplicate of candidate {original.id}"
        s.add(candidate)
        s.flush()
        return candidate

    def admit(
        self,
        run_id: int,
        params: Mapping[str, Any] | Any,
        *,
        members: Iterable[Any] = (),
        llm_calls: Iterable[Mapping[str, Any]] = (),
        reference: bool = False,
        **proposal: Any,
    ) -> tuple[Candidate, list[Evaluation]]:
        """Record a proposal, the LLM calls behind it and, when it is a new candidate, its suite's
        evaluations (one per member), in one transaction: a crash leaves all of it or none, never
        a pending candidate without evaluations. `llm_calls` hold record_llm_call's arguments
        (backend, model, prompt, response, tokens_in, ...). `reference=True` also makes the
        candidate the run's reference. `proposal`: add_candidate's parents, operator, generation,
        rationale, status, error. Returns the candidate and its new evaluations (none for a
        duplicate or an invalid proposal)."""
        rows = [_member(m) for m in members]
        with self._write() as s:
            candidate = self._insert_candidate(s, run_id, params, **proposal)
            orphan = self._orphan_original(s, candidate)
            if orphan is not None:  # an older autorec's crash left the original unqueued
                s.delete(candidate)
                s.flush()
                candidate = orphan
            for call in llm_calls:
                self._insert_llm_call(s, run_id, candidate_id=candidate.id, **call)
            evaluations: list[Evaluation] = []
            if candidate.status == CandidateStatus.PENDING.value:
                evaluations = self._insert_evaluations(s, candidate, rows)
            if reference:
                run = self._get(s, Run, run_id, "run")
                run.reference_candidate_id = candidate.id
        return candidate, evaluations

    def _orphan_original(self, s: Session, candidate: Candidate) -> Candidate | None:
        """The pending original a duplicate repeats, when that original has no evaluations."""
        if candidate.duplicate_of is None:
            return None
        original = s.get(Candidate, candidate.duplicate_of)
        if original is None or original.status != CandidateStatus.PENDING.value:
            return None
        has_evaluation = s.exec(
            select(Evaluation.id).where(Evaluation.candidate_id == original.id)
        ).first()
        return None if has_evaluation else original

    def _parent_generations(self, s: Session, parent_ids: Sequence[int]) -> list[int]:
        if not parent_ids:
            return []
        rows = s.exec(
            select(Candidate.id, Candidate.generation).where(col(Candidate.id).in_(parent_ids))
        ).all()
        missing = sorted(set(parent_ids) - {r[0] for r in rows})
        if missing:
            raise NotFoundError("parent candidate", missing[0], self.location)
        return [r[1] for r in rows]

    @staticmethod
    def _original(s: Session, run_id: int, key: str) -> Candidate | None:
        return s.exec(
            select(Candidate).where(
                Candidate.run_id == run_id,
                Candidate.hash == key,
                col(Candidate.duplicate_of).is_(None),
                Candidate.status != CandidateStatus.SCREENED.value,
            )
        ).first()

    def candidate_by_hash(self, run_id: int, hash: str) -> Candidate | None:
        """The run's original (non-duplicate) candidate with this params hash, if any."""
        with self._read() as s:
            return self._original(s, run_id, hash)

    def get_candidate(self, candidate_id: int) -> Candidate:
        with self._read() as s:
            return self._get(s, Candidate, candidate_id, "candidate")

    def candidates(self, run_id: int, status: str | None = None) -> list[Candidate]:
        """A run's candidates in creation order, optionally only those with one status."""
        query = select(Candidate).where(Candidate.run_id == run_id)
        if status is not None:
            query = query.where(Candidate.status == _status(CandidateStatus, status))
        with self._read() as s:
            return list(s.exec(query.order_by(col(Candidate.id))).all())

    def set_candidate_result(
        self,
        candidate_id: int,
        status: str,
        fitness: float | None = None,
        objectives: Mapping[str, float] | None = None,
        error: str | None = None,
        reported: Mapping[str, float] | None = None,
    ) -> Candidate:
        """Record a candidate's outcome. Only a done candidate has a fitness (a finite float;
        higher is better); a failed one keeps its error and never gets one."""
        status = _status(CandidateStatus, status)
        if fitness is not None:
            fitness = float(fitness)
            if status != CandidateStatus.DONE.value:
                raise ValueError(f"a {status} candidate has no fitness (got {fitness})")
            if fitness != fitness or fitness in (float("inf"), float("-inf")):
                raise ValueError(f"fitness must be finite, not {fitness}; fail the candidate")
        with self._write() as s:
            candidate = self._get(s, Candidate, candidate_id, "candidate")
            candidate.status = status
            candidate.fitness = fitness
            candidate.objectives = _plain(objectives)
            candidate.reported = _plain(reported) if reported else None
            candidate.error = redact(error)
            candidate.finished_at = utcnow()
        return candidate

    def children(self, candidate_id: int) -> list[Candidate]:
        """Candidates that name this one among their parents, in creation order."""
        with self._read() as s:
            return queries.children(s, self._get(s, Candidate, candidate_id, "candidate"))

    # evaluations

    def add_evaluation(
        self, candidate_id: int, model: str, dataset: str, task: str, member: str | None = None
    ) -> Evaluation:
        """Queue one suite member for a candidate; `member` defaults to "model/dataset/task"."""
        return self.add_evaluations(candidate_id, [(model, dataset, task, member)])[0]

    def add_evaluations(self, candidate_id: int, members: Iterable[Any]) -> list[Evaluation]:
        """Queue a candidate's suite in one transaction. A member is a (model, dataset, task)
        tuple, optionally with a 4th item naming it, or an object or dict with model, dataset,
        task (and optionally key or name)."""
        rows = [_member(m) for m in members]
        with self._write() as s:
            candidate = self._get(s, Candidate, candidate_id, "candidate")
            return self._insert_evaluations(s, candidate, rows)

    @staticmethod
    def _insert_evaluations(
        s: Session, candidate: Candidate, rows: Sequence[tuple[str, str, str, str]]
    ) -> list[Evaluation]:
        candidate_id = candidate.id  # read before a failed flush expires the row
        evaluations = [
            Evaluation(
                run_id=candidate.run_id,
                candidate_id=candidate_id,
                member=key,
                model=model,
                dataset=dataset,
                task=task,
            )
            for key, model, dataset, task in rows
        ]
        s.add_all(evaluations)
        try:
            s.flush()
        except sa.exc.IntegrityError:
            raise ArchiveError(
                f"candidate {candidate_id} already has an evaluation for one of "
                f"{[r[0] for r in rows]}"
            ) from None
        return evaluations

    def get_evaluation(self, evaluation_id: int) -> Evaluation:
        with self._read() as s:
            return self._get(s, Evaluation, evaluation_id, "evaluation")

    def evaluations_for(self, candidate_id: int) -> list[Evaluation]:
        with self._read() as s:
            return list(
                s.exec(
                    select(Evaluation)
                    .where(Evaluation.candidate_id == candidate_id)
                    .order_by(col(Evaluation.id))
                ).all()
            )

    def pending_evaluations(self, run_id: int, limit: int | None = None) -> list[Evaluation]:
        """A run's queued evaluations, oldest first: what the searcher hands Tune next."""
        query = (
            select(Evaluation)
            .where(
                Evaluation.run_id == run_id,
                Evaluation.status == EvaluationStatus.PENDING.value,
            )
            .order_by(col(Evaluation.id))
            .limit(limit)
        )
        with self._read() as s:
            return list(s.exec(query).all())

    def start_evaluation(
        self, evaluation_id: int, trial_id: str | None = None, node: str | None = None
    ) -> Evaluation:
        """Mark an evaluation running (one more attempt) and its candidate running."""
        with self._write() as s:
            evaluation = self._get(s, Evaluation, evaluation_id, "evaluation")
            if evaluation.status == EvaluationStatus.DONE.value:
                raise ArchiveError(f"evaluation {evaluation_id} is done; it is not run again")
            evaluation.status = EvaluationStatus.RUNNING.value
            evaluation.started_at, evaluation.finished_at = utcnow(), None
            evaluation.attempt += 1
            evaluation.trial_id, evaluation.node = trial_id, node
            evaluation.metrics = evaluation.error = evaluation.seconds = None
            candidate = s.get(Candidate, evaluation.candidate_id)
            if candidate is not None and candidate.status == CandidateStatus.PENDING.value:
                candidate.status = CandidateStatus.RUNNING.value
        return evaluation

    def finish_evaluation(
        self,
        evaluation_id: int,
        status: str,
        metrics: Mapping[str, Any] | None = None,
        error: str | None = None,
        seconds: float | None = None,
        node: str | None = None,
    ) -> Evaluation:
        """Record an evaluation's outcome (done, failed or timeout). Metrics may hold NaN and
        ±inf; `seconds` defaults to the time since start_evaluation."""
        status = _status(EvaluationStatus, status)
        if status not in _FINISHED_EVALUATION:
            raise ValueError(f"an evaluation finishes done, failed, timeout or stopped, not {status}")
        with self._write() as s:
            evaluation = self._get(s, Evaluation, evaluation_id, "evaluation")
            now = utcnow()
            evaluation.status = status
            evaluation.metrics = _plain(metrics)
            evaluation.error = redact(error)
            evaluation.finished_at = now
            if seconds is None and evaluation.started_at is not None:
                seconds = (now - evaluation.started_at).total_seconds()
            evaluation.seconds = seconds
            if node is not None:
                evaluation.node = node
        return evaluation

    def promote(self, candidate_id: int) -> list[Evaluation]:
        """A candidate stopped early that its rung now ranks among the best runs again: its
        stopped evaluations go back to pending (attempt + 1) and it loses its stopped status,
        in one transaction."""
        with self._write() as s:
            candidate = self._get(s, Candidate, candidate_id, "candidate")
            stopped = s.exec(select(Evaluation).where(
                Evaluation.candidate_id == candidate_id,
                Evaluation.status == EvaluationStatus.STOPPED.value,
            )).all()
            for evaluation in stopped:
                evaluation.status = EvaluationStatus.PENDING.value
                evaluation.started_at = evaluation.finished_at = evaluation.trial_id = None
                evaluation.error = None
                evaluation.attempt += 1
            if stopped:
                candidate.status = CandidateStatus.RUNNING.value
                candidate.error = candidate.fitness = candidate.finished_at = None
            return list(stopped)

    def requeue_running(self, run_id: int, evaluation_ids: Iterable[int] | None = None) -> int:
        """On resume: evaluations left running by a dead driver go back to pending; return how
        many. Their candidates go back to pending, or stay running when some evaluation of
        theirs already finished. Nothing finished is touched. `evaluation_ids` limits it to
        those evaluations (one trial stopped early while others run on); without it, candidates
        an older autorec left pending without evaluations (it wrote them in two transactions)
        get their suite queued too, so the resumed run evaluates them."""
        query = select(Evaluation).where(
            Evaluation.run_id == run_id, Evaluation.status == EvaluationStatus.RUNNING.value
        )
        if evaluation_ids is not None:
            query = query.where(col(Evaluation.id).in_(list(evaluation_ids)))
        with self._write() as s:
            if evaluation_ids is None:
                self._queue_orphans(s, run_id)
            stale = s.exec(query).all()
            for evaluation in stale:
                evaluation.status = EvaluationStatus.PENDING.value
                evaluation.started_at = evaluation.trial_id = None
            s.flush()
            for candidate_id in {e.candidate_id for e in stale}:
                candidate = s.get(Candidate, candidate_id)
                if candidate is None or candidate.status not in (
                    CandidateStatus.PENDING.value,
                    CandidateStatus.RUNNING.value,
                ):
                    continue
                finished = s.exec(
                    select(Evaluation.id).where(
                        Evaluation.candidate_id == candidate_id,
                        col(Evaluation.status).in_(_FINISHED_EVALUATION),
                    )
                ).first()
                candidate.status = (
                    CandidateStatus.RUNNING.value if finished else CandidateStatus.PENDING.value
                )
            return len(stale)

    def _queue_orphans(self, s: Session, run_id: int) -> list[Evaluation]:
        """Give candidates left pending without evaluations the suite of the run (copied from
        its reference, or any candidate that has one). Without a known suite (the crash came
        during the reference's own admission) they stay as they are: admitting the reference
        again completes that one (see `admit`)."""
        has_evaluation = sa.exists().where(Evaluation.candidate_id == Candidate.id)
        orphans = s.exec(
            select(Candidate).where(
                Candidate.run_id == run_id,
                col(Candidate.status).in_([CandidateStatus.PENDING.value,
                                           CandidateStatus.RUNNING.value]),
                ~has_evaluation,
            ).order_by(col(Candidate.id))
        ).all()
        if not orphans:
            return []
        run = s.get(Run, run_id)
        model = run.reference_candidate_id if run is not None else None
        if model is None:
            model = s.exec(
                select(Evaluation.candidate_id).where(Evaluation.run_id == run_id)
                .order_by(col(Evaluation.id)).limit(1)
            ).first()
        suite = [] if model is None else s.exec(
            select(Evaluation).where(Evaluation.candidate_id == model).order_by(col(Evaluation.id))
        ).all()
        rows = [(e.member, e.model, e.dataset, e.task) for e in suite]
        if not rows:
            return []
        queued = []
        for orphan in orphans:
            orphan.status = CandidateStatus.PENDING.value
            queued += self._insert_evaluations(s, orphan, rows)
        return queued

    # LLM calls

    def record_llm_call(
        self,
        run_id: int,
        backend: str,
        model: str,
        prompt: Any,
        response: str | None = None,
        **details: Any,
    ) -> LLMCall:
        """Keep one completion request. `prompt` is a string or the chat messages (JSON data).
        `details`: candidate_id, tokens_in, tokens_out, latency_s, cost, error, created_at.
        A call usually happens before its candidate exists: link it later with link_llm_calls."""
        with self._write() as s:
            self._require_run(s, run_id)
            return self._insert_llm_call(s, run_id, backend, model, prompt, response, **details)

    @staticmethod
    def _insert_llm_call(
        s: Session,
        run_id: int,
        backend: str,
        model: str,
        prompt: Any,
        response: str | None = None,
        *,
        candidate_id: int | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        latency_s: float = 0.0,
        cost: float = 0.0,
        error: str | None = None,
        created_at: datetime | None = None,
    ) -> LLMCall:
        call = LLMCall(
            run_id=run_id,
            candidate_id=candidate_id,
            backend=backend,
            model=model,
            prompt=redact_data(_plain(prompt)),
            response=redact(response),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_s=latency_s,
            cost=cost,
            error=redact(error),
            created_at=created_at or utcnow(),
        )
        s.add(call)
        return call

    def link_llm_calls(self, call_ids: Iterable[int], candidate_id: int) -> None:
        """Attribute calls made while proposing to the candidate they produced."""
        ids = list(call_ids)
        with self._write() as s:
            self._get(s, Candidate, candidate_id, "candidate")
            s.exec(
                sa.update(LLMCall)
                .where(col(LLMCall.id).in_(ids))
                .values(candidate_id=candidate_id)
            )

    def llm_calls_for(self, candidate_id: int) -> list[LLMCall]:
        with self._read() as s:
            return list(
                s.exec(
                    select(LLMCall)
                    .where(LLMCall.candidate_id == candidate_id)
                    .order_by(col(LLMCall.id))
                ).all()
            )

    def llm_totals(self, run_id: int) -> dict[str, float]:
        """calls, tokens_in, tokens_out, cost, latency_s summed over a run (for budget stops)."""
        with self._read() as s:
            return queries.llm_totals(s, run_id)

    # questions about a run

    def top(self, run_id: int | None = None, n: int = 10) -> list[Candidate]:
        """The n fittest done candidates (of one run, or of all), best first; ties by age."""
        with self._read() as s:
            return queries.top(s, run_id, n)

    def failures(self, run_id: int, n: int = 10) -> list[Candidate]:
        """The n most recent failed or invalid candidates, newest first, with their errors."""
        with self._read() as s:
            return queries.failures(s, run_id, n)

    def lineage(self, candidate_id: int) -> dict[str, Any]:
        """Ancestors (nested by "parents") and descendants (nested by "children") as plain data;
        see queries.lineage for the shape."""
        with self._read() as s:
            return queries.lineage(s, candidate_id, self.location)

    def pareto_front(self, run_id: int, objectives: Iterable[Any]) -> list[Candidate]:
        """Done candidates that no other done candidate dominates on the raw objective values.

        `objectives`: (name, "max" | "min") pairs, or the space's Objective objects (anything with
        .name and .direction). Candidates missing an objective, or with a non-finite value, are
        left out. Ordered best first on the first objective.
        """
        pairs = queries.objective_pairs(objectives)
        with self._read() as s:
            return queries.pareto_front(s, run_id, pairs)

    def counts(self, run_id: int) -> dict[str, dict[str, int]]:
        """{"candidates": {status: n}, "evaluations": {status: n}}, every status present."""
        with self._read() as s:
            return queries.counts(s, run_id)

    def best_so_far(self, run_id: int) -> list[BestSoFar]:
        """(candidate_id, fitness, best fitness so far) per evaluated candidate, in creation
        order; invalid and duplicate proposals, which cost no evaluation, are left out."""
        with self._read() as s:
            return queries.best_so_far(s, run_id)


def _reopen(location: str) -> Archive:
    return Archive(location)


def _member(m: Any) -> tuple[str, str, str, str]:
    if isinstance(m, tuple):
        model, dataset, task, *rest = m
        key = rest[0] if rest else None
    else:
        get = m.get if isinstance(m, Mapping) else lambda k, d=None: getattr(m, k, d)
        model, dataset, task = get("model"), get("dataset"), get("task")
        key = get("key") or get("name")
    if not all(isinstance(v, str) and v for v in (model, dataset, task)):
        raise ValueError(f"a suite member needs model, dataset and task names, got {m!r}")
    return (key or f"{model}/{dataset}/{task}", model, dataset, task)
