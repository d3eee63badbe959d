import os

import pytest
import torch

# Two cores are shared by the test run and everything else on the machine: one thread per test
# process keeps timings sane and runs as fast as two threads on these small models.
torch.set_num_threads(1)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Every test runs in its own folder, so a default ./runs.db never leaks between tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOREC_CACHE", str(tmp_path / "cache"))
