"""The Ray Tune trainable: one candidate on one suite member, on a worker.

Workers never touch the archive. They report plain dicts through Tune and the driver writes, which
is what keeps parallel evaluation free of "database is locked" and lost rows. A failure is data:
the trainable catches it and reports the error text, so the driver can store it and go on.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import traceback
from typing import Any

FINAL = "autorec_final"  # 1 on the last report of a trial: its metrics are the evaluation's
ERROR = "autorec_error"
NODE = "autorec_node"

_spaces: dict[str, Any] = {}


def _space(spec: str, options: dict[str, Any]):
    """Spaces are cached per worker process: with reused actors, data loads once per process."""
    from autorec.space import load_space

    key = repr((spec, sorted(options.items(), key=lambda kv: kv[0])))
    if key not in _spaces:
        _spaces[key] = load_space(spec, options)
    return _spaces[key]


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

    from autorec.space import SuiteMember

    _limit_threads(int(config["threads"]))
    node = socket.gethostname()
    try:
        space = _space(config["space"], config["space_options"])
        candidate = space.validate(config["params"])
        member = SuiteMember.from_dict(config["member"])

        def report(metrics: dict[str, float]) -> None:
            tune.report({**_numbers(metrics), FINAL: 0})

        metrics = space.evaluate(candidate, member, report)
        tune.report({**_numbers(metrics), FINAL: 1, NODE: node})
    except Exception as err:  # noqa: BLE001 - every failure becomes a stored, readable error
        summary = "".join(traceback.format_exception_only(type(err), err)).strip()
        tune.report({FINAL: 1, ERROR: summary[-2000:], NODE: node})


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, (int, float)):
            out[key] = float(value) if not isinstance(value, float) or math.isfinite(value) else value
    return out
