"""Ray Tune owns parallelism and placement; this file is the whole contact surface.

`AutorecSearcher` is a Tune Searcher (suggest / on_trial_complete) that forwards to the
SearchDriver, and `run_tune` starts Ray (locally, or joining a cluster with an address) and
runs the trials: one trial per (candidate, suite member).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

from ray.tune.search import Searcher

from autorec.engine.driver import FINISHED, SearchDriver
from autorec.engine.worker import evaluate_trial
from autorec.errors import AutorecError

# Tune writes CSV/JSON/TensorBoard logs of every trial by default; the archive is our record.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Tune's newer console output prints a configuration box even at verbose=0; the CLI has its own.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


class RayError(AutorecError):
    """Ray could not be started or reached."""


_DRIVERS: dict[int, SearchDriver] = {}


class AutorecSearcher(Searcher):
    """Forwards Tune's two questions to the driver: what next, and what came of it."""

    def __init__(self, driver: SearchDriver):
        super().__init__(metric=None, mode=None)
        self.driver = driver

    # Tune pickles its config, searcher included, to save experiment state. The driver (an
    # archive, a proposer, a progress bar) stays in this process: a pickled searcher carries only
    # a key to it. The archive, not Tune's state, is what a resumed search reads.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        _DRIVERS[id(self.driver)] = state.pop("driver")
        state["_driver_key"] = id(self.driver)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.driver = _DRIVERS.get(state.pop("_driver_key"))
        self.__dict__.update(state)

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
        return Searcher.FINISHED if step == FINISHED else step

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        try:
            self.driver.complete(trial_id, result, error)
        except Exception as err:  # noqa: BLE001
            self.driver.fatal = err


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


def run_tune(driver: SearchDriver) -> None:
    """Run trials until the driver says FINISHED (or the search's time budget ends)."""
    from ray import tune

    config = driver.config
    start_ray(config.ray_address, cpus=max(config.workers * config.threads, os.cpu_count() or 1))
    storage = tempfile.mkdtemp(prefix="autorec-tune-")
    stop = {"time_total_s": config.eval_time_limit} if config.eval_time_limit else None
    time_budget = None
    if config.max_time is not None:
        time_budget = max(config.max_time - driver.elapsed(), 1.0)
    trainable = tune.with_resources(evaluate_trial, {"cpu": config.threads})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=AutorecSearcher(driver),
            num_samples=-1,
            max_concurrent_trials=config.workers,
            reuse_actors=True,
            time_budget_s=time_budget,
        ),
        run_config=tune.RunConfig(
            name="search",
            storage_path=storage,
            verbose=0,
            stop=stop,
            log_to_file=False,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    try:
        tuner.fit()
    finally:
        driver.interrupted()
        shutil.rmtree(storage, ignore_errors=True)
    if driver.fatal is not None:
        raise driver.fatal
