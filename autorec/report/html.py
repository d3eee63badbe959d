"""One self-contained HTML page for one run or several: figures as embedded PNG (data: URIs),
tables as HTML, no script and nothing fetched from a network, so it opens anywhere, offline.

Everything that came from a user or a model (run names, params, rationales, operators, errors)
goes through `esc` before it reaches the page.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from autorec.report import figures
from autorec.report.data import FAILED, RunData, reason

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 19px; border-bottom: 2px solid #ddd; margin-top: 36px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
.meta, .note { color: #555; } .empty { background: #fff4e5; padding: 8px 12px; }
.chosen { background: #eef6ff; padding: 8px 12px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.params, td.error { font-family: ui-monospace, monospace; font-size: 12px; max-width: 560px;
       overflow-wrap: anywhere; white-space: pre-wrap; }
figure { margin: 8px 0 16px; } figure img { max-width: 100%; height: auto; }
.test { color: #6a3d9a; }
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def plain(value: Any) -> str:
    """A value as short text: counts with separators, other floats to 4 significant places."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) >= 1000 or 0 < abs(value) < 1e-3 else f"{value:.4f}"


def number(value: Any) -> str:
    return esc(plain(value))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    """A table; a cell is raw HTML only when given as `Raw`, everything else is escaped."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cls = classes[i] if i < len(classes) else ""
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cls = cls or "num"
            text = value.html if isinstance(value, Raw) else number(value)
            cells.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw:
    """HTML built here from escaped parts, put in a table cell as it is."""

    def __init__(self, html_text: str):
        self.html = html_text


def image(fig, alt: str, kind: str) -> str:
    data = base64.b64encode(figures.png(fig)).decode("ascii")
    width, height = (int(v * figures.DPI) for v in fig.get_size_inches())
    return (f'<figure data-figure="{esc(kind)}"><img alt="{esc(alt)}" width="{width}" '
            f'height="{height}" src="data:image/png;base64,{data}"></figure>')


def params_text(params: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={_compact(v)}" for k, v in (params or {}).items())


def _compact(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def metrics_text(values: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {plain(v)}" for k, v in (values or {}).items())


def render(datas: Sequence[RunData], location: str) -> str:
    """The report page for the runs in `datas`, read from the archive at `location`."""
    names = ", ".join(d.run.name for d in datas)
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    colours = figures.operator_colors(datas)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>autorec report: {esc(names)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>autorec report: {esc(names)}</h1>",
        f'<p class="meta">archive {esc(location)} · generated {esc(generated)} UTC. '
        "Candidates are chosen and ranked on validation metrics only; test figures "
        '(<span class="test">purple, "test"</span>) are reported beside them and never used to '
        "choose.</p>",
    ]
    if len(datas) > 1:
        parts.append(_comparison(datas))
    for index, d in enumerate(datas):
        parts.append(_run_section(d, index, colours, compare=len(datas) > 1))
    parts.append("</body></html>")
    return "\n".join(parts)


def _comparison(datas: Sequence[RunData]) -> str:
    rows = []
    for d in datas:
        chosen = d.chosen
        rows.append([
            d.run.name, d.run.space, d.run.proposer, d.run.status, len(d.evaluated),
            chosen.fitness if chosen else None, f"#{chosen.id}" if chosen else "-",
            metrics_text(chosen.objectives) if chosen else "",
            Raw(f'<span class="test">{esc(metrics_text(chosen.reported))}</span>')
            if chosen else "",
            sum(d.llm.tokens_in) + sum(d.llm.tokens_out), sum(d.llm.cost),
        ])
    out = ["<section id=\"compare\"><h2>Runs compared</h2>",
           table(["run", "space", "proposer", "status", "evaluated", "best fitness", "chosen",
                  "validation objectives", "test figures (reported only)", "LLM tokens",
                  "LLM cost"], rows)]
    fig = figures.progress(datas)
    if fig is not None:
        out.append(image(fig, "best-so-far validation fitness of every run", "progress-compare"))
    out.append("</section>")
    return "\n".join(out)


def _run_section(d: RunData, index: int, colours: dict[str, str], compare: bool) -> str:
    run = d.run
    counts = ", ".join(f"{n} {status}" for status, n in sorted(d.status_counts().items()))
    out = [
        f'<section class="run" id="run-{index}"><h2>run {esc(run.name)}</h2>',
        f'<p class="meta">space {esc(run.space)} · proposer {esc(run.proposer)} · status '
        f"{esc(run.status)} · started {esc(_when(run.started_at))} · finished "
        f"{esc(_when(run.finished_at))} · candidates: {esc(counts or 'none')}</p>",
    ]
    if run.space_contract and run.space_contract.get("description"):
        out.append('<details><summary class="note">what the space searches</summary>'
                   f'<p class="note">{esc(run.space_contract["description"])}</p></details>')
    out += [f'<p class="empty">{esc(note)}</p>' for note in d.notes]
    if d.chosen is None:
        out.append(f'<p class="empty">run {esc(run.name)} has no finished candidates yet: '
                   "nothing has a validation fitness to plot or rank.</p>")
    else:
        c = d.chosen
        out.append(
            f'<p class="chosen">validation chose <b>#{c.id}</b> ({esc(c.operator or "-")}, '
            f"fitness {number(c.fitness)}): {esc(metrics_text(c.objectives))}. "
            f'<span class="test">Its test figures, reported only: '
            f"{esc(metrics_text(c.reported) or 'none recorded')}.</span></p>")
    out += _progress(d, compare)
    out += _pareto(d)
    out += _figure_block("Lineage", figures.lineage(d, colours), "lineage of every candidate",
                         "lineage", "no candidates yet.")
    out += _figure_block("Operator shares", figures.operators(d, colours),
                         "share of proposals per operator over the run", "operators",
                         "no proposals yet.")
    out += _llm(d)
    out += _failures(d)
    out += _top(d)
    out.append("</section>")
    return "\n".join(out)


def _figure_block(title: str, fig, alt: str, kind: str, empty: str) -> list[str]:
    out = [f"<h3>{esc(title)}</h3>"]
    out.append(image(fig, alt, kind) if fig is not None else f'<p class="note">{esc(empty)}</p>')
    return out


def _progress(d: RunData, compare: bool) -> list[str]:
    # Compared runs share one progress figure above; each run still lists its incumbents.
    fig = None if compare else figures.progress([d])
    out = ["<h3>Progress</h3>"]
    if fig is not None:
        out.append(image(fig, "best-so-far validation fitness", "progress"))
    if d.incumbents:
        out.append('<p class="note">Each time validation fitness improved, the candidate it '
                   "chose then, with its test figures beside:</p>")
        out.append(table(
            ["evaluation", "seconds", "id", "operator", "fitness", "validation objectives",
             "test figures (reported only)"],
            [[inc.evaluation, inc.seconds, f"#{inc.candidate.id}", inc.candidate.operator,
              inc.candidate.fitness, metrics_text(inc.candidate.objectives),
              Raw(f'<span class="test">{esc(metrics_text(inc.candidate.reported))}</span>')]
             for inc in d.incumbents],
        ))
    elif fig is None:
        out.append('<p class="note">no candidate has a validation fitness yet.</p>')
    return out


def _pareto(d: RunData) -> list[str]:
    out = _figure_block("Pareto front", figures.pareto(d),
                        "Pareto front over the raw validation objectives", "pareto",
                        "no done candidates with every objective yet.")
    if d.front_ids:
        by_id = {n.id: n for n in d.nodes}
        names = [o.name for o in d.objectives]
        chosen = d.chosen.id if d.chosen else None
        shown = d.front_ids[:30]
        more = len(d.front_ids) - len(shown)
        out.append(table(
            ["id", *names, "fitness", "operator"],
            [[f"#{i}" + (" (chosen)" if i == chosen else ""),
              *[by_id[i].objectives.get(n) for n in names], by_id[i].fitness,
              by_id[i].operator] for i in shown],
        ))
        if more:
            out.append(f'<p class="note">and {more:,} more on the front '
                       "(autorec archive pareto lists them all).</p>")
    return out


def _llm(d: RunData) -> list[str]:
    usage = d.llm
    out = ["<h3>LLM usage</h3>"]
    if not usage.calls:
        return out + ['<p class="note">no LLM calls in this run.</p>']
    latencies = sorted(usage.latency_s)
    out.append(table(
        ["calls", "tokens in", "tokens out", "cost", "mean latency s", "p95 latency s",
         "errors"],
        [[usage.calls, sum(usage.tokens_in), sum(usage.tokens_out), sum(usage.cost),
          sum(latencies) / len(latencies), latencies[int(0.95 * (len(latencies) - 1))],
          usage.errors]],
    ))
    out.append(image(figures.llm(d), "LLM tokens, cost and latency per call", "llm"))
    return out


def _failures(d: RunData) -> list[str]:
    out = ["<h3>Failures</h3>"]
    if not d.failure_reasons:
        return out + ['<p class="note">no failed or invalid candidates.</p>']
    total = sum(d.failure_reasons.values())
    out.append(f'<p class="note">{total:,} failed or invalid candidate(s); '
               f"the latest {len(d.failures)}:</p>")
    out.append(image(figures.failures(d), "failures by reason", "failures"))
    out.append(table(
        ["id", "status", "operator", "reason", "rationale"],
        [[f"#{c.id}", c.status, c.operator, reason(c.error, limit=400), c.rationale or ""]
         for c in d.failures if c.status in FAILED],
        classes=["", "", "", "error", "params"],
    ))
    return out


def _top(d: RunData) -> list[str]:
    out = ["<h3>Top candidates by validation fitness</h3>"]
    if not d.top:
        return out + ['<p class="note">no finished candidates yet.</p>']
    out.append(table(
        ["id", "fitness", "operator", "gen", "parents", "validation objectives",
         "test figures (reported only)", "params", "rationale"],
        [[f"#{c.id}", c.fitness, c.operator, c.generation,
          ", ".join(f"#{p}" for p in c.parent_ids), metrics_text(c.objectives),
          Raw(f'<span class="test">{esc(metrics_text(c.reported))}</span>'),
          params_text(c.params), c.rationale or ""] for c in d.top],
        classes=["", "", "", "", "", "", "", "params", "params"],
    ))
    return out


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"
