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
from autorec.space import SpaceOptions, load_space

# What a resumed search may change: how it runs, not what it searches.
RESUMABLE_OVERRIDES = ("budget", "max_time", "patience", "max_tokens", "max_cost", "workers",
                       "threads", "ray_address", "eval_time_limit")


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


def run_search(
    config: SearchConfig,
    archive: Archive,
    resume_run_id: int | None = None,
    on_progress: Callable[[SearchDriver], None] | None = None,
    on_start: Callable[[SearchDriver], None] | None = None,
    proposer: Proposer | None = None,
) -> SearchOutcome:
    """Run (or resume) a search to its end; `proposer` replaces the one `config` names."""
    from autorec.engine.tune_bridge import run_tune

    space = load_space(
        config.space,
        SpaceOptions(dataset=config.dataset, task=config.task, settings=config.space_settings),
    )
    if not space.suite():
        raise ConfigError(f"space '{config.space}' has an empty suite")
    _share_cores_with_workers(config)
    if proposer is None:
        proposer = load_proposer(config.proposer, space, config.seed, **config.proposer_options)
    if resume_run_id is None:
        run = archive.create_run(
            config.space, config.proposer, name=config.run_name, space_version=space.version,
            config=config.model_dump(mode="json"), seed=config.seed,
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
        stop_reason=driver.stop_reason or "the search's time budget ended",
        evaluations=driver.evaluations_finished,
        best_fitness=driver.best_fitness,
    )
