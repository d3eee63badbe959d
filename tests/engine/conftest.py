import os
import shutil
import tempfile
from pathlib import Path

import pytest

PLUGIN = Path(__file__).with_name("plugin_space.txt")
DUO = Path(__file__).with_name("duo_space.txt")


@pytest.fixture(scope="session")
def ray_tmp():
    """Ray's sockets and logs under one short temporary folder (socket paths have a length limit)."""
    folder = tempfile.mkdtemp(prefix="ar-ray-", dir="/tmp")
    os.environ["AUTOREC_RAY_TMPDIR"] = folder
    yield folder
    try:
        import ray

        ray.shutdown()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def bowl(tmp_path) -> str:
    """The plugin space written into the test's own folder, as `file.py:Class`."""
    target = tmp_path / "bowl_space.py"
    target.write_text(PLUGIN.read_text())
    return f"{target}:Bowl"


@pytest.fixture
def duo(tmp_path) -> str:
    """The two-member space of duo_space.txt (fitness worked out by hand), as `file.py:Class`."""
    target = tmp_path / "duo_space.py"
    target.write_text(DUO.read_text())
    return f"{target}:Duo"


@pytest.fixture
def short_tmp():
    """A short folder for Ray's temp files: its socket paths must stay under 107 bytes."""
    folder = tempfile.mkdtemp(prefix="ar-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
