"""Run the test suite once and keep its closing line as a result file, so README's "N passed in
S s" traces to a file instead of a copied terminal line.

    python benchmarks/test_suite.py --label fast -- -m "not slow"
    python benchmarks/test_suite.py --label full

writes benchmarks/results/test_suite_<label>.json: the command, pytest's closing line and its
counts, the wall time, the date, the core count and the load average before and after (these
machines are shared: a figure taken under load says so).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)")


def summary(output: str) -> tuple[str, dict[str, int], float | None]:
    """pytest's closing line ('== 12 passed, 1 xfailed in 3.2s ==') and what it counts."""
    lines = [line.strip("= ") for line in output.splitlines() if re.search(r" in [\d.]+s", line)]
    line = lines[-1] if lines else ""
    counts = {kind.rstrip("s") if kind.startswith(("error", "warning")) else kind: int(n)
              for n, kind in COUNT.findall(line)}
    seconds = re.search(r" in ([\d.]+)s", line)
    return line, counts, float(seconds.group(1)) if seconds else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="result file name: test_suite_LABEL.json")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args]
    load_before = os.getloadavg()
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    wall = time.monotonic() - start
    line, counts, seconds = summary(done.stdout)
    result = {
        "command": shlex.join(["python", "-m", "pytest", *args.pytest_args]),
        "closing_line": line,
        "counts": counts,
        "pytest_seconds": seconds,
        "wall_seconds": round(wall, 1),
        "exit_code": done.returncode,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    out = ROOT / "benchmarks" / "results" / f"test_suite_{args.label}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{line}\nwrote {out.relative_to(ROOT)}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
