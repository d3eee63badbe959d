"""The report tests' shared archive (report_archives.fill writes it as the driver would)."""

from __future__ import annotations

import pytest

from autorec.archive import Archive
from report_archives import fill


@pytest.fixture(scope="session")
def search_db(tmp_path_factory):
    """An archive holding two finished runs, `alpha` and `beta` (shared: tests only read it)."""
    path = tmp_path_factory.mktemp("search") / "runs.db"
    with Archive(path) as archive:
        fill(archive, "alpha", n=40, seed=1)
        fill(archive, "beta", n=24, seed=2, llm=False)
    return path
