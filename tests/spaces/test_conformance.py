"""The built-in spaces and a plugin loaded from a file pass `autorec.testing.SpaceConformance`."""

from __future__ import annotations

import textwrap

import pytest

from autorec.errors import UnknownNameError
from autorec.search_spaces import ArchitectureSpace
from autorec.space import SpaceError, load_space, load_space_class
from autorec.testing import SpaceConformance

TINY = {"threads": 1}


class TestArchitectureCTR(SpaceConformance):
    space_spec = "architecture"
    options = {"dataset": "synthetic", "task": "ctr", "settings": {**TINY, "max_epochs": 1}}


class TestArchitectureSequential(SpaceConformance):
    space_class = ArchitectureSpace
    options = {"dataset": "synthetic", "task": "sequential", "settings": {**TINY, "max_epochs": 1}}


class TestEmbeddingDims(SpaceConformance):
    space_spec = "embedding_dims"
    options = {"dataset": "synthetic", "settings": {**TINY, "epochs": 1, "models": ["fm", "dcnv2"]}}


PLUGIN = textwrap.dedent(
    '''
    """A closed-form space: the fitness landscape is a bowl with its optimum at x=1, y=-2."""
    from typing import Literal

    import pydantic

    from autorec.space import Objective, SearchSpace, SuiteMember


    class Point(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        x: float = pydantic.Field(0.0, ge=-5, le=5)
        y: float = pydantic.Field(0.0, ge=-5, le=5)
        shape: Literal["round", "flat"] = "round"


    class MySpace(SearchSpace):
        name = "bowl"
        Candidate = Point
        objectives = [Objective(name="score", direction="max")]

        def describe(self):
            return "Maximise score over x and y in [-5, 5]; shape round or flat."

        def reference(self):
            return Point()

        def sample(self, trial):
            return Point(
                x=trial.suggest_float("x", -5, 5),
                y=trial.suggest_float("y", -5, 5),
                shape=trial.suggest_categorical("shape", ["round", "flat"]),
            )

        def suite(self):
            return [SuiteMember("bowl", "none", "closed-form")]

        def evaluate(self, candidate, member, report):
            scale = 1.0 if candidate.shape == "round" else 0.5
            return {"score": -scale * ((candidate.x - 1) ** 2 + (candidate.y + 2) ** 2)}


    class NotASpace:
        pass
    '''
)


class TestFilePlugin(SpaceConformance):
    """A third-party space in a .py file, loaded by path like `--space my_space.py:MySpace`."""

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _plugin_file(cls, tmp_path_factory):
        path = tmp_path_factory.mktemp("plugin") / "my_space.py"
        path.write_text(PLUGIN)
        cls.space_spec = f"{path}:MySpace"

    def test_loads_by_path(self):
        space = load_space(self.space_spec)
        assert space.name == "bowl"
        assert space.evaluate(space.validate({"x": 1, "y": -2}), space.suite()[0], print) == {
            "score": 0.0
        }


def test_file_that_does_not_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import no_such_module_for_autorec\n")
    with pytest.raises(SpaceError, match="does not import"):
        load_space(f"{path}:Anything")


def test_class_that_is_not_a_space(tmp_path):
    path = tmp_path / "my_space.py"
    path.write_text(PLUGIN)
    with pytest.raises(SpaceError, match="not a SearchSpace"):
        load_space_class(f"{path}:NotASpace")
    with pytest.raises(SpaceError, match="not a SearchSpace"):
        load_space_class(f"{path}:Missing")


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(f"{tmp_path / 'nope.py'}:MySpace")
    with pytest.raises(UnknownNameError, match="architecture"):
        load_space("no-such-space")


def test_builtin_names_load():
    assert load_space_class("architecture") is ArchitectureSpace
    assert load_space_class("embedding_dims").name == "embedding_dims"
