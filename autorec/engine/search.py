"""`run_search`: open or resume a run, build the space and proposer, let Tune drive the driver."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from autorec.agents import Proposer, load_proposer
from autorec.archive import Archive
from autorec.engine.driver import SearchDriver
from autorec.errors import ConfigError
from autorec.search_config import SearchConfig
from autorec.space import InvalidCandidate, SearchSpace

# What a resumed search may change: how it runs, not what it searches.
RESUMABLE_OVERRIDES = ("budget", "max_time", "patience", "max_tokens", "max_cost", "workers",
                       "threads", "ray_address", "eval_time_limit", "gpus_per_trial")


@dataclasses.dataclass
class SearchOutcome:
    run_id: int
    run_name: str
    stop_reason: str | None
    evaluations: int
    best_fitness: float | None


def _share_cores_with_workers(config: SearchConfig) -> None:
    """The driver's own torch work (a local LLM) gets the cores local trials leave free.

    Without this, torch in the driver and in every worker each take all cores and a local LLM
    call runs several times slower (measured: 25-60 s per proposal became 115-270 s).
    """
    if config.ray_address:
        return
    import torch

    free = (os.cpu_count() or 1) - config.workers * config.threads
    torch.set_num_threads(max(1, free))


def resumed_config(archive: Archive, run_name: str, overrides: dict) -> tuple[int, SearchConfig]:
    run = archive.get_run(run_name)
    values = dict(run.config)
    unknown = sorted(set(overrides) - set(RESUMABLE_OVERRIDES))
    if unknown:
        raise ConfigError(
            f"--resume continues run '{run.name}' as it was; {', '.join(unknown)} cannot change "
            f"(only {', '.join(RESUMABLE_OVERRIDES)} can)"
        )
    values.update(overrides)
    return run.id, SearchConfig.model_validate(values)


def check_seed_candidates(space: SearchSpace, seeds: list, source: str = "seed candidates") -> None:
    """Every seed must fit the space's schema: a bad one is the user's to fix before anything
    is stored (file, entry and field in one line)."""
    for index, params in enumerate(seeds, start=1):
        try:
            space.validate(params)
        except InvalidCandidate as err:
            raise ConfigError(f"{source}: entry {index}: {err}") from None


def prepare_search(config: SearchConfig, proposer: Proposer | None = None, new_run: bool = True):
    """Everything that can refuse a search, done before any archive is opened or created: the
    space and its settings, the seeds, the proposer, and (for a GPU space) the hardware."""
    space = config.build_space(new_run=new_run)
    if not space.suite():
        raise ConfigError(f"space '{config.space}' has an empty suite")
    check_seed_candidates(space, config.seed_candidates)
    check_gpu_request(config, space)
    if proposer is None:
        proposer = load_proposer(config.proposer, space, config.seed, **config.proposer_options)
    return space, proposer


def check_gpu_request(config: SearchConfig, space: SearchSpace) -> None:
    """Refuse early a GPU request that this machine cannot meet; a cluster is checked once Ray
    is up (engine.tune_bridge)."""
    if space.needs_gpu and not config.gpus_per_trial:
        raise ConfigError(
            f"space '{space.name}' needs a GPU per trial: pass --gpus-per-trial (e.g. 1)"
        )
    if config.gpus_per_trial and not config.ray_address and local_gpu_count() == 0:
        raise ConfigError(
            f"--gpus-per-trial {config.gpus_per_trial:g}: this machine has no GPU "
            "(join a cluster with GPUs with --ray-address)"
        )


def local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_search(
    config: SearchConfig,
    archive: Archive | str,
    resume_run_id: int | None = None,
    on_progress: Callable[[SearchDriver], None] | None = None,
    on_start: Callable[[SearchDriver], None] | None = None,
    proposer: Proposer | None = None,
) -> SearchOutcome:
    """Run (or resume) a search to its end; `proposer` replaces the one `config` names.

    `archive` is an open Archive or its URL; a URL is opened (and created) only once the search
    has been checked, so a refused search leaves no database behind.
    """
    from autorec.engine.tune_bridge import run_tune

    space, proposer = prepare_search(config, proposer, new_run=resume_run_id is None)
    _share_cores_with_workers(config)
    if not isinstance(archive, Archive):
        archive = Archive(archive, create=resume_run_id is None)
    if resume_run_id is None:
        run = archive.create_run(
            config.space, config.proposer, name=config.run_name, space_version=space.version,
            config=config.model_dump(mode="json"), seed=config.seed,
            space_contract=space.contract(),
        )
        run_id = run.id
    else:
        run_id = resume_run_id
        state = archive.load_proposer_state(run_id)
        if state:
            proposer.load_state_dict(state)
        archive.set_run_status(run_id, "running")
    driver = SearchDriver(config, archive, space, proposer, run_id, on_progress=on_progress)
    if on_start:
        on_start(driver)
    try:
        run_tune(driver)
    except BaseException:
        archive.set_run_status(run_id, "interrupted")
        raise
    finished = driver.stop_reason is not None and not driver.queue
    archive.set_run_status(run_id, "finished" if finished else "interrupted")
    return SearchOutcome(
        run_id=run_id,
        run_name=archive.get_run(run_id).name,
        # Tune's time budget (set from --max-time) may end the search before the driver's own
        # check does: one reason either way.
        stop_reason=driver.stop_reason or (
            f"time limit of {config.max_time:g} s reached" if config.max_time is not None
            else "the search's time budget ended"
        ),
        evaluations=driver.evaluations_finished,
        best_fitness=driver.best_fitness,
    )
