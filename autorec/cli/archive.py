"""`autorec archive`: read the runs, candidates, evaluations and LLM calls a search kept.

Every command only reads: a missing archive is an error, never a new empty file.
"""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.markup import escape
from rich.tree import Tree

from autorec.cli.common import db_option, open_archive
from autorec.cli.output import console, fmt, print_json
from autorec.cli.output import table as _table
from autorec.errors import AutorecError

app = typer.Typer(help="Browse the search archive: runs, candidates, lineage, Pareto fronts.",
                  no_args_is_help=True)

FAILED = ("failed", "invalid")
TEXT_LIMIT = 300  # characters of a prompt or response shown in a table


def table(title, columns, rows):
    """A rich table whose text cells are shown as written, never read as rich markup."""
    return _table(escape(title) if title else title, columns,
                  [[_plain(v) for v in row] for row in rows])


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 10:
        return f"{value:,.0f}"  # counts (params, rows) that metrics store as floats
    if value is None or isinstance(value, (int, float)):
        return value
    return escape(value if isinstance(value, str) else str(value))


@app.command("list")
def list_(
    run: Optional[str] = typer.Option(None, "--run", "-r", help="a run's name or id: list its candidates"),
    top: int = typer.Option(20, "--top", "-n", min=1, help="candidates to list, best first"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document instead of tables"),
    db: Optional[str] = db_option(),
) -> None:
    """The runs; with --run, that run's candidates ranked by fitness, then its failures."""
    with open_archive(db) as archive:
        if run is None:
            _list_runs(archive, as_json)
        else:
            _list_candidates(archive, archive.get_run(run), top, as_json)


def _list_runs(archive, as_json: bool) -> None:
    rows = []
    for run in archive.list_runs():
        best = archive.top(run.id, 1)
        counts = {k: v for k, v in archive.counts(run.id)["candidates"].items() if v}
        rows.append({
            "id": run.id, "name": run.name, "space": run.space, "proposer": run.proposer,
            "status": run.status, "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "candidates": counts, "best_fitness": best[0].fitness if best else None,
            "best_candidate": best[0].id if best else None,
        })
    if as_json:
        print_json({"archive": archive.location, "runs": rows})
        return
    if not rows:
        console.print(f"no runs in {archive.location}", markup=False)
        return
    console.print(table(
        None, ["run", "space", "proposer", "status", "started", "candidates", "best fitness"],
        [[r["name"], r["space"], r["proposer"], r["status"], _when(r["started_at"]),
          _counts(r["candidates"]), r["best_fitness"]] for r in rows],
    ))


def _list_candidates(archive, run, top: int, as_json: bool) -> None:
    ranked = archive.top(run.id, top)
    failures = archive.failures(run.id, top)
    counts = archive.counts(run.id)["candidates"]
    if as_json:
        print_json({
            "run": run.name, "space": run.space, "status": run.status,
            "candidates": {k: v for k, v in counts.items() if v},
            "ranked": [_candidate_row(c) for c in ranked],
            "failures": [_candidate_row(c) for c in failures],
        })
        return
    console.print(f"run [bold]{escape(run.name)}[/] ({escape(run.space)}, {escape(run.proposer)}, "
                  f"{run.status}): {_counts(counts)}")
    names = sorted({k for c in ranked for k in (c.objectives or {})})
    tests = sorted({k for c in ranked for k in (c.reported or {})})
    console.print(table(
        f"top {len(ranked)} by validation fitness (test figures only reported)",
        ["id", "fitness", "status", "operator", "gen", *names, *[f"test {k}" for k in tests],
         "params"],
        [[c.id, c.fitness, c.status, c.operator, c.generation,
          *[(c.objectives or {}).get(k) for k in names],
          *[(c.reported or {}).get(k) for k in tests], _params_line(c.params)] for c in ranked],
    ))
    if failures:
        shown = sum(counts.get(s, 0) for s in FAILED)
        more = f" (latest {len(failures)} of {shown})" if shown > len(failures) else ""
        console.print(f"[bold]failed or invalid{more}[/]")
        for c in failures:
            console.print(f"  #{c.id} {c.status} {c.operator or '-'}: {_one_line(c.error)}",
                          highlight=False, markup=False)


@app.command("show")
def show(
    candidate_id: int = typer.Argument(..., metavar="ID", help="candidate id"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document (full prompts)"),
    db: Optional[str] = db_option(),
) -> None:
    """Everything about one candidate: params, results per suite member, lineage, LLM calls."""
    with open_archive(db) as archive:
        c = archive.get_candidate(candidate_id)
        run = archive.get_run(c.run_id)
        evaluations = archive.evaluations_for(c.id)
        calls = archive.llm_calls_for(c.id)
        lineage = _lineage_summary(archive.lineage(c.id))
    payload = {
        **_candidate_row(c), "run": run.name, "rationale": c.rationale,
        "duplicate_of": c.duplicate_of, "created_at": _iso(c.created_at), "finished_at": _iso(c.finished_at),
        "reference": run.reference_candidate_id == c.id, "test_metrics": c.reported,
        "evaluations": [{
            "member": e.member, "model": e.model, "dataset": e.dataset, "task": e.task,
            "status": e.status, "metrics": e.metrics, "seconds": e.seconds, "node": e.node,
            "attempt": e.attempt, "error": e.error,
        } for e in evaluations],
        "lineage": lineage,
        "llm_calls": [{
            "id": call.id, "backend": call.backend, "model": call.model,
            "tokens_in": call.tokens_in, "tokens_out": call.tokens_out,
            "latency_s": call.latency_s, "cost": call.cost, "error": call.error,
            "prompt": call.prompt, "response": call.response, "created_at": _iso(call.created_at),
        } for call in calls],
    }
    if as_json:
        print_json(payload)
        return

    title = f"candidate #{c.id} of run {run.name}" + (" (reference)" if payload["reference"] else "")
    facts = [
        ["status", c.status], ["fitness", c.fitness], ["operator", c.operator],
        ["parents", ", ".join(f"#{p}" for p in c.parent_ids) or "-"],
        ["generation", c.generation], *[[k, v] for k, v in (c.objectives or {}).items()],
        *[[f"test {k} (reported only)", v] for k, v in (c.reported or {}).items()],
    ]
    if c.duplicate_of is not None:
        facts.append(["duplicate of", f"#{c.duplicate_of}"])
    if c.error:
        facts.append(["error", c.error])
    if c.rationale:
        facts.append(["rationale", c.rationale])
    console.print(table(title, ["field", "value"], facts))
    console.print(table("params", ["param", "value"], _param_rows(c.params)))
    if evaluations:
        keys = _metric_keys([e.metrics or {} for e in evaluations])
        console.print(table(
            "suite", ["member", "status", *keys, "seconds", "node", "error"],
            [[e.member, e.status, *[(e.metrics or {}).get(k) for k in keys], e.seconds, e.node,
              _one_line(_last_line(e.error))] for e in evaluations],
        ))
        for e in evaluations:
            if e.error and "\n" in e.error:  # a worker's traceback: shown whole
                console.print(f"{e.member} {e.status}:\n{e.error}", highlight=False, markup=False)
    console.print(f"lineage: {_lineage_line(lineage)}", highlight=False, markup=False)
    for call in payload["llm_calls"]:
        console.print(table(
            f"LLM call {call['id']}: {call['backend']} {call['model']}", ["field", "value"],
            [["tokens", f"{call['tokens_in']:,} in, {call['tokens_out']:,} out"],
             ["latency s", call["latency_s"]], ["error", call["error"]],
             ["prompt", _truncate(_prompt_text(call["prompt"]))],
             ["response", _truncate(call["response"] or "")]],
        ))


@app.command("lineage")
def lineage(
    candidate_id: int = typer.Argument(..., metavar="ID", help="candidate id"),
    as_json: bool = typer.Option(False, "--json", help="print the lineage as nested JSON"),
    db: Optional[str] = db_option(),
) -> None:
    """A candidate's ancestors down to it, then its descendants: "#id operator fitness"."""
    with open_archive(db) as archive:
        data = archive.lineage(candidate_id)
    if as_json:
        print_json(data)
        return
    console.print(_lineage_tree(data))


@app.command("diff")
def diff(
    a: int = typer.Argument(..., metavar="A", help="candidate id"),
    b: int = typer.Argument(..., metavar="B", help="candidate id"),
    show_all: bool = typer.Option(False, "--all", help="list every param, not only those that differ"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document"),
    db: Optional[str] = db_option(),
) -> None:
    """Two candidates side by side: params, then objectives and metrics with B - A."""
    with open_archive(db) as archive:
        ca, cb = archive.get_candidate(a), archive.get_candidate(b)
        ea = {e.member: e.metrics or {} for e in archive.evaluations_for(a)}
        eb = {e.member: e.metrics or {} for e in archive.evaluations_for(b)}
    missing = object()
    params = []
    for key in dict.fromkeys([*ca.params, *cb.params]):
        va, vb = ca.params.get(key, missing), cb.params.get(key, missing)
        if show_all or va != vb:
            params.append({"param": key, "a": None if va is missing else va,
                           "b": None if vb is missing else vb, "same": va == vb})
    values = [{"name": "fitness", "member": None, **_delta(ca.fitness, cb.fitness)}]
    for key in dict.fromkeys([*(ca.objectives or {}), *(cb.objectives or {})]):
        values.append({"name": key, "member": None,
                       **_delta((ca.objectives or {}).get(key), (cb.objectives or {}).get(key))})
    for member in dict.fromkeys([*ea, *eb]):
        ma, mb = ea.get(member, {}), eb.get(member, {})
        for key in _metric_keys([ma, mb], limit=None):
            values.append({"name": key, "member": member, **_delta(ma.get(key), mb.get(key))})
    if as_json:
        print_json({"a": a, "b": b, "params": params, "values": values})
        return
    label = f"params ({'all' if show_all else 'differing'})"
    if params:
        console.print(table(label, ["param", f"#{a}", f"#{b}"],
                            [[p["param"], _value(p["a"]), _value(p["b"])] for p in params]))
    else:
        console.print(f"{label}: none, the params are identical")
    console.print(table(
        "objectives and metrics", ["member", "name", f"#{a}", f"#{b}", "delta"],
        [[v["member"] or "", v["name"], v["a"], v["b"], _signed(v["delta"])] for v in values],
    ))


@app.command("pareto")
def pareto(
    run: Optional[str] = typer.Option(None, "--run", "-r", help="run name or id (default: the latest)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document"),
    db: Optional[str] = db_option(),
) -> None:
    """The candidates no other done candidate beats on every objective of the run's space."""
    with open_archive(db) as archive:
        chosen = run_or_latest(archive, run)
        objectives = run_objectives(archive, chosen)
        front = archive.pareto_front(chosen.id, objectives)
    pairs = [(o.name, o.direction) for o in objectives]
    if as_json:
        print_json({
            "run": chosen.name, "space": chosen.space,
            "objectives": [{"name": n, "direction": d} for n, d in pairs],
            "front": [_candidate_row(c) for c in front],
        })
        return
    console.print(table(
        f"Pareto front of run {chosen.name}: " + ", ".join(f"{n} ({d})" for n, d in pairs),
        ["id", *[n for n, _ in pairs], "fitness", "operator", "params"],
        [[c.id, *[(c.objectives or {}).get(n) for n, _ in pairs], c.fitness, c.operator,
          _params_line(c.params)] for c in front],
    ))


# Helpers shared with `autorec export`.


def run_or_latest(archive, run: str | None):
    """The run named (or numbered) `run`, else the archive's most recent run."""
    if run is not None:
        return archive.get_run(run)
    runs = archive.list_runs()
    if not runs:
        raise AutorecError(f"the archive at {archive.location} holds no runs")
    return runs[-1]


def run_objectives(archive, run) -> list[Any]:
    """The objectives of the run's space, as searched: from the contract the run stored when it
    started; for a run older than that, from its space."""
    from autorec.space import contract_objectives, load_space_class

    if run.space_contract:
        return contract_objectives(run.space_contract)
    try:
        cls = load_space_class(run.space)
    except AutorecError as err:
        raise AutorecError(f"run '{run.name}': cannot load its space to know its objectives: "
                           f"{err}") from None
    stored = set()
    for c in archive.candidates(run.id, "done"):
        stored.update(c.objectives or {})
    found = _stored_objectives(cls.objectives, stored)
    if found is not None:
        return found
    from autorec.export import rebuild_space  # the run searched other objectives: ask its space

    objectives = list(rebuild_space(run).objectives)
    return _stored_objectives(objectives, stored) or objectives


def _stored_objectives(objectives: list[Any], stored: set[str]) -> list[Any] | None:
    """`objectives` if the run's candidates hold them, else their test-split names (archives
    from before selection moved to the validation split stored those), else None."""
    if not stored or {o.name for o in objectives} <= stored:
        return list(objectives)
    legacy = [o.model_copy(update={"name": o.name.removeprefix("valid_")}) for o in objectives]
    return legacy if {o.name for o in legacy} <= stored else None


# Formatting.


def _candidate_row(c) -> dict[str, Any]:
    return {
        "id": c.id, "fitness": c.fitness, "status": c.status, "operator": c.operator,
        "generation": c.generation, "parents": list(c.parent_ids), "objectives": c.objectives,
        "test_metrics": c.reported, "params": c.params, "error": c.error,
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "none"


def _when(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else ""


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _params_line(params: dict, limit: int = 60) -> str:
    text = ", ".join(f"{k}={_value(v)}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _param_rows(params: dict) -> list[list[Any]]:
    return [[k, _value(v)] for k, v in params.items()]


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return fmt(value)


def _last_line(text: str | None) -> str:
    """The summary line of a stored traceback (its last non-empty line)."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _one_line(text: str | None, limit: int = 160) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _truncate(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters; --json for all)"


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):  # chat messages
        return "\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" if isinstance(m, dict)
                         else str(m) for m in prompt)
    return "" if prompt is None else str(prompt)


def _metric_keys(metrics: list[dict[str, Any]], limit: int | None = 8) -> list[str]:
    """Numeric metric names in first-seen order; tables show the first `limit`."""
    keys = list(dict.fromkeys(
        k for m in metrics for k, v in m.items() if isinstance(v, (int, float))
    ))
    return keys if limit is None else keys[:limit]


def _delta(a: Any, b: Any) -> dict[str, Any]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return {"a": a, "b": b, "delta": b - a if numeric else None}


def _signed(value: float | None) -> str:
    if value is None or value != value:
        return ""
    if abs(value) >= 1000 or (float(value).is_integer() and abs(value) >= 10):
        return f"{value:+,.0f}"
    return f"{value:+.4f}"


def _label(node: dict[str, Any], current: bool = False) -> str:
    fitness = "-" if node["fitness"] is None else f"{node['fitness']:+.4f}"
    status = "" if node["status"] == "done" else f" ({node['status']})"
    text = escape(f"#{node['id']} {node['operator'] or '-'} {fitness}{status}")
    return f"[bold]{text}[/bold] ◀" if current else text


def _lineage_tree(data: dict[str, Any]) -> Tree:
    """Ancestors top-down to the candidate, its descendants below it.

    A node with several parents (a combine) hangs under each of them; after its first appearance
    it is printed as "(see above)" with nothing below it.
    """
    me = data["candidate"]
    nodes: dict[int, dict[str, Any]] = {}
    parents_of: dict[int, list[int]] = {}

    def collect(node: dict[str, Any]) -> None:
        if node["id"] in nodes:
            return
        nodes[node["id"]] = node
        parents_of[node["id"]] = [p["id"] for p in node.get("parents", [])]
        for parent in node.get("parents", []):
            collect(parent)

    collect({**me, "parents": data["ancestors"]})
    below: dict[int, list[int]] = {}
    for child, parents in parents_of.items():
        for parent in parents:
            below.setdefault(parent, []).append(child)
    roots = [i for i in sorted(nodes) if not parents_of[i]]
    shown: set[int] = set()

    def add_down(branch: Tree, node: dict[str, Any]) -> None:
        for child in node.get("children", []):
            if child["id"] in shown:
                branch.add(_label(child) + " (see above)")
                continue
            shown.add(child["id"])
            add_down(branch.add(_label(child)), child)

    def add_up(branch: Tree, node_id: int) -> None:
        for child_id in sorted(below.get(node_id, [])):
            if child_id in shown:
                branch.add(_label(nodes[child_id], child_id == me["id"]) + " (see above)")
                continue
            shown.add(child_id)
            sub = branch.add(_label(nodes[child_id], child_id == me["id"]))
            if child_id == me["id"]:
                add_down(sub, {"children": data["descendants"]})
            else:
                add_up(sub, child_id)

    tree = Tree(_label(nodes[roots[0]], roots[0] == me["id"]) if len(roots) == 1
                else f"lineage of #{me['id']}")
    for root in roots:
        shown.add(root)
        branch = tree if len(roots) == 1 else tree.add(_label(nodes[root]))
        if root == me["id"]:
            add_down(branch, {"children": data["descendants"]})
        else:
            add_up(branch, root)
    return tree


def _lineage_summary(data: dict[str, Any]) -> dict[str, Any]:
    ancestors: dict[int, dict[str, Any]] = {}
    descendants: dict[int, dict[str, Any]] = {}

    def walk(nodes: list[dict[str, Any]], key: str, into: dict[int, dict[str, Any]]) -> None:
        for node in nodes:
            if node["id"] not in into:
                into[node["id"]] = node
                walk(node.get(key, []), key, into)

    walk(data["ancestors"], "parents", ancestors)
    walk(data["descendants"], "children", descendants)
    roots = sorted(i for i, n in ancestors.items() if not n.get("parents"))
    scored = [n for n in descendants.values() if n["fitness"] is not None]
    best = max(scored, key=lambda n: n["fitness"]) if scored else None
    return {
        "ancestors": len(ancestors), "roots": roots, "descendants": len(descendants),
        "parents": [n["id"] for n in data["ancestors"]],
        "children": [n["id"] for n in data["descendants"]],
        "best_descendant": None if best is None else {"id": best["id"], "fitness": best["fitness"]},
    }


def _lineage_line(summary: dict[str, Any]) -> str:
    if summary["ancestors"]:
        roots = ", ".join(f"#{r}" for r in summary["roots"])
        up = f"{summary['ancestors']} ancestor(s) back to {roots}"
    else:
        up = "no ancestors"
    down = f"{summary['descendants']} descendant(s)"
    if summary["best_descendant"]:
        best = summary["best_descendant"]
        down += f", the best #{best['id']} at {best['fitness']:+.4f}"
    return f"{up}; {down} (autorec archive lineage for the tree)"
