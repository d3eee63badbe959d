"""Ray Tune owns parallelism and placement; this file is the whole contact surface.

`AutorecSearcher` is a Tune Searcher (suggest / on_trial_complete) that forwards to the
SearchDriver, and `run_tune` starts Ray (locally, or joining a cluster with an address) and
runs the trials: one trial per (candidate, suite member).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from typing import Any

from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import Searcher

from autorec.engine.driver import FINISHED, SearchDriver
from autorec.engine.worker import FINAL, TIMEOUT, WALL_SECONDS, evaluate_trial
from autorec.errors import AutorecError

# Tune writes CSV/JSON/TensorBoard logs of every trial by default; the archive is our record.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Tune's newer console output prints a configuration box even at verbose=0; the CLI has its own.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


class RayError(AutorecError):
    """Ray could not be started or reached."""


_DRIVERS: dict[int, SearchDriver] = {}


class DriverByKey:
    """Tune pickles its config, searcher and scheduler included, to save experiment state. The
    driver (an archive, a proposer, a progress bar) stays in this process: a pickled object
    carries only a key to it. The archive, not Tune's state, is what a resumed search reads."""

    driver: SearchDriver

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        _DRIVERS[id(self.driver)] = state.pop("driver")
        state["_driver_key"] = id(self.driver)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.driver = _DRIVERS.get(state.pop("_driver_key"))
        self.__dict__.update(state)


class AutorecSearcher(DriverByKey, Searcher):
    """Forwards Tune's two questions to the driver: what next, and what came of it."""

    def __init__(self, driver: SearchDriver):
        super().__init__(metric=None, mode=None)
        self.driver = driver
        self._started: dict[str, float] = {}  # trial id -> when it was handed to Tune
        self.ended: set[str] = set()  # trials whose worker ended itself at the time limit

    # Tune swallows or wraps what a searcher raises; the driver keeps it and run_tune raises it
    # again once Tune has stopped.
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.driver.fatal is not None:
            return Searcher.FINISHED
        try:
            step = self.driver.next_trial(trial_id)
        except Exception as err:  # noqa: BLE001
            self.driver.fatal = err
            return Searcher.FINISHED
        if isinstance(step, dict):
            # The worker enforces the limit itself (see worker._evaluate_within).
            step["time_limit"] = self.driver.config.eval_time_limit
            self._started[trial_id] = time.monotonic()
        return Searcher.FINISHED if step == FINISHED else step

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # The final result settles the evaluation as it arrives: a worker that stopped an
        # evaluation at its time limit ends its process next, and Tune then reports the trial
        # as errored, without its last result.
        if result.get(FINAL) == 1:
            if result.get(TIMEOUT) is not None:
                self.ended.add(trial_id)
            self.on_trial_complete(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        started = self._started.pop(trial_id, None)
        if error and not result and started is not None:
            # A worker lost without a final result: how long it had run decides whether that
            # was its time limit.
            result = {WALL_SECONDS: time.monotonic() - started}
        try:
            self.driver.complete(trial_id, result, error)
        except Exception as err:  # noqa: BLE001
            self.driver.fatal = err


class AutorecScheduler(DriverByKey, FIFOScheduler):
    """Tune runs trials first come, first served; the driver may stop one at a rung of
    successive halving (engine/fidelity.py). Tune asks the scheduler before the searcher."""

    def __init__(self, driver: SearchDriver):
        super().__init__()
        self.driver = driver

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        try:
            stop = self.driver.on_epoch(trial.trial_id, result)
        except Exception as err:  # noqa: BLE001 - kept and raised once Tune has stopped
            self.driver.fatal = err
            return self.STOP
        return self.STOP if stop else self.CONTINUE


def start_ray(address: str | None, cpus: int) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = cpus
        temp_dir = os.environ.get("AUTOREC_RAY_TMPDIR")
        if temp_dir:
            kwargs["_temp_dir"] = temp_dir
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, OSError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RayError(f"could not start or reach {where}: {err}") from None


def check_cluster_gpus(config, space) -> None:
    """Trials that ask for GPUs wait forever on a cluster without them: refuse instead."""
    import ray

    if not config.gpus_per_trial:
        return
    available = ray.cluster_resources().get("GPU", 0)
    if available < config.gpus_per_trial:
        where = f"the Ray cluster at {config.ray_address}" if config.ray_address else "local Ray"
        raise RayError(
            f"--gpus-per-trial {config.gpus_per_trial:g}: {where} has {available:g} GPU(s)"
            + (f" and space '{space.name}' needs one" if space.needs_gpu else "")
        )


class _QuietEndedTrials(logging.Filter):
    """Tune logs a trial whose worker ended itself at its time limit as a failed task (with a
    traceback) and as incomplete: that end is ours and already stored as a timeout."""

    LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune")

    def __init__(self, ended: set[str]):
        super().__init__()
        self.ended = ended

    def filter(self, record: logging.LogRecord) -> bool:
        trials = re.findall(r"evaluate_trial_(\w+)", record.getMessage())
        return not trials or not all(t in self.ended for t in trials)

    def __enter__(self) -> _QuietEndedTrials:
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


def settle_finished(driver: SearchDriver) -> None:
    """A driver killed between storing a candidate's last evaluation and its fitness left the
    candidate running with nothing left to run: settle those before any trial starts."""
    for status in ("running", "pending"):
        for candidate in driver.archive.candidates(driver.run_id, status=status):
            evaluations = driver.archive.evaluations_for(candidate.id)
            if evaluations and all(e.status in ("done", "failed", "timeout", "stopped")
                                   for e in evaluations):
                driver._settle(candidate.id)  # noqa: SLF001 - the driver's own settling rule


def run_tune(driver: SearchDriver) -> None:
    """Run trials until the driver says FINISHED (or the search's time budget ends)."""
    from ray import tune

    config = driver.config
    start_ray(config.ray_address, cpus=max(config.workers * config.threads, os.cpu_count() or 1))
    storage = tempfile.mkdtemp(prefix="autorec-tune-")
    time_budget = None
    if config.max_time is not None:
        time_budget = max(config.max_time - driver.elapsed(), 1.0)
    check_cluster_gpus(config, driver.space)
    resources = {"cpu": config.threads}
    if config.gpus_per_trial:
        resources["gpu"] = config.gpus_per_trial
    trainable = tune.with_resources(evaluate_trial, resources)
    searcher = AutorecSearcher(driver)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=AutorecScheduler(driver),
            num_samples=-1,
            max_concurrent_trials=config.workers,
            reuse_actors=True,
            time_budget_s=time_budget,
        ),
        run_config=tune.RunConfig(
            name="search",
            storage_path=storage,
            verbose=0,
            log_to_file=False,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    settle_finished(driver)
    try:
        with _QuietEndedTrials(searcher.ended):
            tuner.fit()
    finally:
        driver.interrupted()
        shutil.rmtree(storage, ignore_errors=True)
    if driver.fatal is not None:
        raise driver.fatal
