"""`autorec spaces`: list the spaces and show one's candidate fields, objectives and reference."""

from __future__ import annotations

import json
import textwrap
import urllib.error

from typer.testing import CliRunner

from autorec.cli import app

runner = CliRunner()

TOY_SPACE = textwrap.dedent('''
    from typing import ClassVar, Literal

    import pydantic

    from autorec.space import Objective, SearchSpace, SuiteMember


    class ToyCandidate(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")

        width: int = pydantic.Field(8, ge=1, le=64, description="a width")
        rate: float = pydantic.Field(0.5, gt=0.0, lt=1.0, description="a rate")
        kind: Literal["a", "b"] = "a"
        tags: list[str] = []
        limit: int | None = None


    class ToySpace(SearchSpace):
        name: ClassVar[str] = "toy"
        version: ClassVar[str] = "7"
        Candidate = ToyCandidate
        objectives = [Objective(name="score", direction="max")]
        needs_dataset = True
        gates = ["correct"]

        def describe(self):
            return "A toy space [for tests]."

        def reference(self):
            return ToyCandidate()

        def sample(self, trial):
            return ToyCandidate(width=trial.suggest_int("width", 1, 64))

        def suite(self):
            return [SuiteMember("fm", self.options.dataset, "ctr")]

        def evaluate(self, candidate, member, report):
            return {"score": candidate.width, "correct": 1.0}
''')


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def as_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_shows_the_builtin_spaces_with_versions_and_objectives():
    result = invoke("spaces", "list")
    assert result.exit_code == 0, result.output
    assert "architecture" in result.stdout and "embedding_dims" in result.stdout
    assert "built-in" in result.stdout and "embedding_params (min, weight 0.05)" in result.stdout

    rows = {r["name"]: r for r in as_json(invoke("spaces", "list", "--json"))}
    assert rows["architecture"]["version"] == "1" and rows["architecture"]["source"] == "built-in"
    assert [o["name"] for o in rows["embedding_dims"]["objectives"]] == ["valid_auc", "embedding_params"]


def test_a_broken_plugin_is_listed_with_its_error_and_hides_nothing(monkeypatch):
    import autorec.space

    names = autorec.space.space_names()
    monkeypatch.setattr(autorec.space, "space_names", lambda: [*names, "ghost"])
    rows = {r["name"]: r for r in as_json(invoke("spaces", "list", "--json"))}
    assert "unknown space 'ghost'" in rows["ghost"]["error"]
    assert rows["architecture"]["error"] is None


def test_show_architecture_lists_fields_ranges_objectives_and_reference():
    result = invoke("spaces", "show", "architecture")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Architecture search for the ctr task" in out
    assert "one of fm, deepfm, dcnv2, din, dare" in out and "[4, 256]" in out
    assert "candidate/ml-100k/ctr" in out

    data = as_json(invoke("spaces", "show", "architecture", "--json"))
    fields = {f["name"]: f for f in data["fields"]}
    assert fields["embedding_dim"]["type"] == "integer" and fields["embedding_dim"]["range"] == "[4, 256]"
    assert fields["model"]["default"] == "deepfm"
    assert data["reference"]["model"] == "deepfm"
    assert [o["name"] for o in data["objectives"]] == ["valid_auc", "params"]
    assert data["reported_metrics"] == ["auc", "logloss"]
    assert data["schema"]["type"] == "object"


def test_show_takes_the_task_and_space_settings():
    data = as_json(invoke("spaces", "show", "architecture", "--task", "sequential",
                          "--set", "max_epochs=20", "--json"))
    assert [o["name"] for o in data["objectives"]] == ["valid_ndcg@10", "params"]
    assert data["reference"]["model"] == "sasrec"
    assert {f["name"]: f for f in data["fields"]}["epochs"]["range"] == "[1, 20]"


def test_show_embedding_dims_builds_its_candidate_from_the_dataset():
    data = as_json(invoke("spaces", "show", "embedding_dims", "--dataset", "synthetic", "--json"))
    assert [f["name"] for f in data["fields"]] == [f"f{i}" for i in range(12)]
    assert data["fields"][0]["range"] == "one of 1, 2, 4, 8, 16, 32, 64"
    assert set(data["reference"].values()) == {16}
    assert data["suite"][0] == "fm/synthetic/ctr"


def test_show_embedding_dims_without_its_data_is_a_clean_error(monkeypatch):
    def offline(url, destination, timeout=60.0):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr("autorec.data.cache.fetch", offline)
    result = invoke("spaces", "show", "embedding_dims", "--dataset", "ml-1m")  # not in the cache
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "network is unreachable" in result.stderr
    assert "Traceback" not in result.output


def test_show_a_space_from_a_file_reads_its_schema(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(TOY_SPACE)
    result = invoke("spaces", "show", f"{path}:ToySpace")
    assert result.exit_code == 0, result.output
    assert "A toy space [for tests]." in result.stdout  # describe() is not read as markup
    assert "gates: correct" in result.stdout

    data = as_json(invoke("spaces", "show", f"{path}:ToySpace", "--json"))
    fields = {f["name"]: f for f in data["fields"]}
    assert data["version"] == "7" and data["gates"] == ["correct"]
    assert fields["rate"]["range"] == "(0.0, 1.0)" and fields["width"]["range"] == "[1, 64]"
    assert fields["kind"]["range"] == "one of a, b" and fields["tags"]["type"] == "array of string"
    assert fields["limit"]["type"] == "integer | null"


def test_unknown_space_is_an_error_naming_the_known_ones():
    result = invoke("spaces", "show", "nope")
    assert result.exit_code == 2
    assert "unknown space 'nope'" in result.stderr and "architecture" in result.stderr
