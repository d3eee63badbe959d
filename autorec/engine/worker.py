"""The Ray Tune trainable: one candidate on one suite member, on a worker.

Workers never touch the archive. They report plain dicts through Tune and the driver writes, which
is what keeps parallel evaluation free of "database is locked" and lost rows. A failure is data:
the trainable catches it and reports the error text, so the driver can store it and go on.
"""

from __future__ import annotations

import faulthandler
import math
import os
import queue
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable

FINAL = "autorec_final"  # 1 on the last report of a trial: its metrics are the evaluation's
ERROR = "autorec_error"
NODE = "autorec_node"
TIMEOUT = "autorec_timeout"  # set (to the seconds it ran) when the worker stopped an evaluation
SECONDS = "autorec_seconds"  # the evaluation's wall time, measured on the worker
WALL_SECONDS = "autorec_wall_seconds"  # a lost trial's time since the driver handed it out
EXIT_GRACE_S = 2.0  # how long a timed-out worker waits before it ends its process
WATCHDOG_MARGIN_S = 10.0  # seconds past the limit after which the GIL-free watchdog ends a worker
# Loading the space (imports, its plugin file) is the worker's set-up, not the evaluation: the
# limit starts once it is done. Loading gets this long on its own before it counts as a hang.
LOAD_LIMIT_S = 120.0

_spaces: dict[str, Any] = {}


def _space(spec: str, options: dict[str, Any], source: dict[str, str] | None = None,
           objectives: list[str] = (), constraints: list[str] = ()):
    """Spaces are cached per worker process: with reused actors, data loads once per process.
    The search's own objectives and constraints are applied as in the driver: a space may compute
    more (e.g. diversity metrics) when a search asks for them."""
    from autorec.space import load_space, parse_constraint, parse_objective

    key = repr((spec, sorted(options.items(), key=lambda kv: kv[0]), list(objectives),
                list(constraints)))
    if key not in _spaces:
        space = load_space(_local_spec(spec, source), options)
        if objectives or constraints:
            space.add_search_objectives([parse_objective(o) for o in objectives],
                                        [parse_constraint(c) for c in constraints])
        _spaces[key] = space
    return _spaces[key]


def _local_spec(spec: str, source: dict[str, str] | None) -> str:
    """A file space whose file this node lacks (another machine of the cluster) is written from
    the text the driver sent, under a name derived from its content."""
    import hashlib
    import tempfile
    from pathlib import Path

    if not source or Path(source["path"]).is_file():
        return spec
    digest = hashlib.sha256(source["text"].encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"autorec-space-{digest}"
    folder.mkdir(exist_ok=True)
    target = folder / Path(source["path"]).name
    if not target.is_file():
        target.write_text(source["text"])
    return str(target) + spec[len(source["path"]):]


def _limit_devices(gpus: float) -> None:
    """A trial without a GPU sees none: Ray no longer clears CUDA_VISIBLE_DEVICES for zero-GPU
    workers, and a CPU trial must not grab (or crash on) a GPU another trial owns. With GPUs,
    Ray sets it to the trial's own devices."""
    if not gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _limit_threads(threads: int) -> None:
    """Cap torch's threads without importing torch: a space that trains imports it itself (and
    reads OMP_NUM_THREADS then); one that does not never pays the second it takes to import."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


def evaluate_trial(config: dict[str, Any]) -> None:
    from ray import tune

    limit = config.get("time_limit")
    if limit:
        _evaluate_within(config, float(limit), tune.report)
        return
    tune.report(_evaluate(config, lambda metrics: tune.report({**_numbers(metrics), FINAL: 0})))


def _evaluate(config: dict[str, Any], report: Callable[[dict[str, float]], None],
              ready: Callable[[], None] = lambda: None) -> dict[str, Any]:  # fmt: skip
    """Load the space, evaluate one candidate on one member; the final result, never raises.
    `ready()` is called once the space is loaded, when the evaluation proper (and its measured
    seconds) starts."""
    from autorec.space import SuiteMember

    start = time.monotonic()
    _limit_threads(int(config["threads"]))
    _limit_devices(float(config.get("gpus") or 0))
    node = socket.gethostname()
    try:
        space = _space(config["space"], config["space_options"], config.get("space_source"),
                       config.get("objectives") or (), config.get("constraints") or ())
        candidate = space.validate(config["params"])
        member = SuiteMember.from_dict(config["member"])
        start = time.monotonic()
        ready()
        metrics = space.evaluate(candidate, member, report)
        return {**_numbers(metrics), FINAL: 1, NODE: node, SECONDS: time.monotonic() - start}
    except Exception as err:  # noqa: BLE001 - every failure becomes a stored, readable error
        # The whole traceback is stored (`archive show`); its last line is the summary.
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__)).strip()
        return {FINAL: 1, ERROR: _tail(text, 20_000), NODE: node, SECONDS: time.monotonic() - start}


def _evaluate_within(config: dict[str, Any], limit: float, send: Callable[[dict], None]) -> None:
    """Evaluate with a hard time limit: the evaluation runs in a thread of its own and this, the
    trial's thread, forwards its reports until the limit. Python cannot stop a thread, and Tune
    reuses actors, so a worker whose evaluation ran past its limit reports the timeout and then
    ends its own process: nothing it computes later is reported, and it burns no more CPU.

    This thread needs the GIL to act; an evaluation stuck in a native call that holds it would
    keep it waiting. faulthandler's watchdog is a C thread that needs no GIL: armed a little
    past the limit, it ends the process hard (Tune then reports the trial lost, and the driver,
    seeing it ran past the limit, stores a timeout).

    The limit counts from the moment the space is loaded (see LOAD_LIMIT_S)."""
    faulthandler.dump_traceback_later(LOAD_LIMIT_S + limit + WATCHDOG_MARGIN_S, exit=True)
    inbox: queue.Queue[dict[str, Any]] = queue.Queue()
    loaded, started = threading.Event(), []

    def ready() -> None:
        # Re-armed here, in the evaluation's thread: an evaluation that takes the GIL at once
        # would keep this worker's own thread from doing it.
        started.append(time.monotonic())
        faulthandler.dump_traceback_later(limit + WATCHDOG_MARGIN_S, exit=True)
        loaded.set()

    def run() -> None:
        try:
            report = lambda metrics: inbox.put({**_numbers(metrics), FINAL: 0})  # noqa: E731
            inbox.put(_evaluate(config, report, ready=ready))
        finally:
            loaded.set()  # loading failed: the error result is already in the inbox

    thread = threading.Thread(target=run, name="autorec-evaluation", daemon=True)
    thread.start()
    loaded.wait(LOAD_LIMIT_S)
    start = started[0] if started else time.monotonic()
    while True:
        left = start + limit - time.monotonic()
        try:
            result = inbox.get(timeout=max(left, 0.0))
        except queue.Empty:
            break
        if time.monotonic() - start > limit:
            break  # it came in after the limit: a late result is a timeout, never a result
        if result[FINAL] == 1:
            faulthandler.cancel_dump_traceback_later()
            send(result)
            return
        send(result)
    elapsed = time.monotonic() - start
    send({FINAL: 1, TIMEOUT: elapsed, SECONDS: elapsed, NODE: socket.gethostname()})
    # Tune has the timeout once `send` returns, but its reply to the actor call that carried it
    # may still be on the way: give it a moment, then end the process (Tune starts a new actor).
    thread.join(EXIT_GRACE_S)
    if thread.is_alive():
        _end_process()


def _end_process() -> None:
    """End this worker: through Ray (an intended exit, which Ray does not report as a crash),
    and hard if that does not take within a few seconds."""
    try:
        import ray

        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
        time.sleep(EXIT_GRACE_S * 2)
    finally:
        os._exit(0)


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, (int, float)):
            out[key] = float(value) if not isinstance(value, float) or math.isfinite(value) else value
    return out
