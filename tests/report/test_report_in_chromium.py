"""The report renders in a real browser: headless Chromium opens the file offline, every figure
paints, nothing logs to the console, and injected markup in archived text never runs."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from PIL import Image
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app
from autorec.report.figures import PALETTE
from report_archives import fill

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INJECTED = '<script>console.error("injected script ran")</script>'
# Colours that only the figures paint: operator colours, the failure bars, the latency bars.
FIGURE_COLOURS = {"tpe/lineage": PALETTE[1], "mutate": PALETTE[2], "failures": PALETTE[3],
                  "latency": PALETTE[4]}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _pixels_near(image: Image.Image, colour: tuple[int, int, int], tol: int = 12) -> int:
    return sum(n for n, rgb in image.getcolors(1 << 24)
               if all(abs(a - b) <= tol for a, b in zip(rgb, colour)))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_report_renders_in_headless_chromium(tmp_path):
    db = tmp_path / "runs.db"
    with Archive(db) as archive:
        fill(archive, f"shown {INJECTED}", n=40, seed=3, rationale=INJECTED)
    result = CliRunner().invoke(app, ["report", "--db", str(db), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output

    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1280,6000", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", (tmp_path / "r.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no error, and the injected script never ran

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 6000)
    for what, colour in FIGURE_COLOURS.items():
        assert _pixels_near(image, _rgb(colour)) > 300, f"{what} figure did not paint"
