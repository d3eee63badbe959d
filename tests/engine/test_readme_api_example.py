"""README's Python API example, run as written: a user copies it first."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_the_readme_python_example_runs(ray_tmp, capsys):
    (block,) = re.findall(r"## Python API\n\n```python\n(.*?)```", README.read_text(), re.S)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    result, frame, trained = namespace["result"], namespace["frame"], namespace["trained"]
    assert result.evaluations == 6 and result.best is not None
    assert "valid_auc" in result.best.objectives and "auc" in result.best.reported
    assert any(c.operator == "seed" for c in namespace["archive"].candidates(result.run))
    assert len(frame) >= 6 and "test.auc" in frame.columns
    assert 0.5 < trained.valid_metrics["auc"] <= 1 and 0.5 < trained.metrics["auc"] <= 1
    printed = capsys.readouterr().out
    assert result.run in printed and "valid_auc" in printed
