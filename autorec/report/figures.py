"""The report's figures, drawn with matplotlib's object API (no pyplot state, no GUI backend).

Each function takes loaded RunData and returns a Figure, or None when the run has nothing to
show for that figure (the report says so in words instead). Every text that came from a user or
a model (run names, operators, error lines) passes `label`: matplotlib would otherwise read a
pair of `$` as mathematics and fail on text it cannot parse.

Sized for 100,000 candidates: points are drawn as one scatter per operator and edges as one
NaN-separated line per operator, both rasterised.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from autorec.report.data import DONE, RunData

KINDS = ("progress", "pareto", "lineage", "operators", "llm", "failures")
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
CHOSEN = "#d62728"
MAX_EDGES = 20_000
DPI = 100


def label(text: object) -> str:
    """User text as matplotlib shows it literally: `$` escaped, one line, bounded length."""
    line = " ".join(str(text).split())
    line = line if len(line) <= 70 else line[:69] + "…"
    return line.replace("$", r"\$")


def operator_colors(datas: Sequence[RunData]) -> dict[str, str]:
    """One colour per operator across every run of a report, in first-seen order."""
    seen = dict.fromkeys(n.operator for d in datas for n in d.nodes)
    return {op: PALETTE[i % len(PALETTE)] for i, op in enumerate(seen)}


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # Light compression: encoding at zlib's default level cost more than drawing small figures.
    fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def svg(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg")
    return buffer.getvalue()


def _figure(width: float = 11.0, height: float = 3.6, cols: int = 1, left: float = 0.8,
            right: float = 0.25) -> tuple[Figure, list]:
    """Margins in inches, fixed: a layout engine would measure every label on every draw, which
    cost more than the drawing itself."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=0.6 / height,
                        top=1 - 0.45 / height, wspace=0.28)
    axes = fig.subplots(1, cols, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, list(axes)


def progress(datas: Sequence[RunData]) -> Figure | None:
    """Best-so-far validation fitness against evaluations and against wall time, one line per
    run; the incumbents (what validation chose at that moment) are marked."""
    if not any(d.incumbents for d in datas):
        return None
    fig, (by_count, by_time) = _figure(cols=2)
    for i, d in enumerate(datas):
        colour = PALETTE[i % len(PALETTE)]
        xs, ts, ys, best = [], [], [], None
        for k, node in enumerate(d.evaluated, start=1):
            if node.fitness is not None and (best is None or node.fitness > best):
                best = node.fitness
            if best is not None:
                xs.append(k)
                ts.append(node.seconds)
                ys.append(best)
        name = label(d.run.name)
        by_count.step(xs, ys, where="post", color=colour, label=name)
        timed = [(t, y) for t, y in zip(ts, ys) if t is not None]
        if timed:
            timed.sort()
            by_time.step([t for t, _ in timed], [y for _, y in timed], where="post",
                         color=colour, label=name)
        by_count.plot([inc.evaluation for inc in d.incumbents],
                      [inc.candidate.fitness for inc in d.incumbents], "o", color=colour, ms=4)
        marks = [(inc.seconds, inc.candidate.fitness) for inc in d.incumbents
                 if inc.seconds is not None]
        if marks:
            by_time.plot(*zip(*marks), "o", color=colour, ms=4)
    by_count.set(xlabel="evaluated candidates", ylabel="best validation fitness so far",
                 title="best-so-far validation fitness")
    by_time.set(xlabel="wall time since the run started (s)", ylabel="best validation fitness",
                title="against wall time")
    by_count.legend(loc="lower right", fontsize=8)
    return fig


def pareto(d: RunData) -> Figure | None:
    """Done candidates over their raw objectives (validation), the front joined, the chosen
    candidate (best fitness) starred. One panel per objective after the first."""
    objectives = d.objectives
    done = [n for n in d.nodes if n.status == DONE]
    if not objectives or not done:
        return None
    front = set(d.front_ids)
    chosen = d.chosen.id if d.chosen else None
    first = objectives[0]
    others = objectives[1:3] or [None]
    fig, axes = _figure(width=5.5 * len(others), height=4.0, cols=len(others), left=0.9)
    front_nodes = [n for n in done if n.id in front]
    chosen_nodes = [n for n in done if n.id == chosen]
    for ax, other in zip(axes, others):
        def coords(nodes, other=other):
            xs = np.array([n.objectives.get(first.name, np.nan) for n in nodes], dtype=float)
            ys = np.array([n.objectives.get(other.name, np.nan) if other is not None
                           else n.fitness for n in nodes], dtype=float)
            ok = np.isfinite(xs) & np.isfinite(ys)
            return xs[ok], ys[ok]

        xs, ys = coords(done)
        if len(xs):
            ax.scatter(xs, ys, s=6 if len(xs) < 5000 else 1, color="#9e9e9e", alpha=0.5,
                       label="done", rasterized=True)
        xs, ys = coords(front_nodes)
        if len(xs):
            order = np.argsort(xs)
            ax.plot(xs[order], ys[order], "-o", color="#1f77b4", ms=4, lw=1,
                    label="Pareto front")
        xs, ys = coords(chosen_nodes)
        if len(xs):
            ax.plot(xs, ys, "*", color=CHOSEN, ms=16, label=f"chosen #{chosen}")
        ax.set(xlabel=f"{label(first.name)} ({first.direction})",
               ylabel=(f"{label(other.name)} ({other.direction})" if other is not None
                       else "validation fitness"))
        ax.legend(loc="upper left", fontsize=8)  # "best" measures every point: slow at scale
    fig.suptitle("Pareto front over the raw validation objectives")
    return fig


def lineage(d: RunData, colours: dict[str, str]) -> Figure | None:
    """Every candidate at (its id, validation fitness), each parent -> child edge drawn
    in the child's operator colour; candidates without a fitness sit on a band below."""
    if not d.nodes:
        return None
    scores = [n.fitness for n in d.nodes if n.fitness is not None]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    floor = low - 0.15 * ((high - low) or 1.0)
    ys = np.array([n.fitness if n.fitness is not None else floor for n in d.nodes])
    index = {n.id: k for k, n in enumerate(d.nodes)}
    xs = np.array([n.id for n in d.nodes], dtype=float)
    ops = np.array([n.operator for n in d.nodes], dtype=object)
    fig, (ax,) = _figure(height=4.2, right=1.9)
    edges = [(index[p], k, n.operator) for k, n in enumerate(d.nodes)
             for p in n.parents if p in index]
    title = "lineage: parent -> child edges coloured by the child's operator"
    if len(edges) > MAX_EDGES:  # drawing every edge of a huge run is seconds of ink on ink
        title += f" ({MAX_EDGES:,} of {len(edges):,} edges, drawn at random)"
        keep = np.random.default_rng(0).choice(len(edges), MAX_EDGES, replace=False)
        edges = [edges[i] for i in np.sort(keep)]
    for op, colour in colours.items():
        # One polyline per operator, edges separated by NaN: one path to draw, not one per edge.
        mine = [(p, c) for p, c, o in edges if o == op]
        if mine:
            pc = np.array(mine)
            x = np.column_stack([xs[pc[:, 0]], xs[pc[:, 1]], np.full(len(pc), np.nan)]).ravel()
            y = np.column_stack([ys[pc[:, 0]], ys[pc[:, 1]], np.full(len(pc), np.nan)]).ravel()
            ax.plot(x, y, color=colour, lw=0.6, alpha=0.6, rasterized=True)
    for op, colour in colours.items():
        mine = ops == op
        if mine.any():
            ax.scatter(xs[mine], ys[mine], s=16 if len(xs) < 5000 else 2, color=colour,
                       label=label(op), rasterized=True, zorder=3)
    if scores:
        ax.axhline(floor, color="#bbbbbb", lw=0.5)
        ax.annotate("no fitness (failed, invalid, duplicate, pending)", (xs[0], floor),
                    xytext=(4, 4), textcoords="offset points", fontsize=7, color="#666666")
    ax.autoscale_view()
    ax.set(xlabel="candidate id (creation order)", ylabel="validation fitness", title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, markerscale=2)
    return fig


def operators(d: RunData, colours: dict[str, str], windows: int = 20) -> Figure | None:
    """Each operator's share of the proposals in consecutive windows of the run, as stacked
    bars (at least 5 proposals a window, so a round-robin start does not read as noise)."""
    nodes = [n for n in d.nodes if n.operator != "reference"] or d.nodes
    if not nodes:
        return None
    size = max(5, math.ceil(len(nodes) / windows))
    starts = list(range(0, len(nodes), size))
    ops = [op for op in colours if any(n.operator == op for n in nodes)]
    fig, (ax,) = _figure(height=3.4, right=1.9)
    bottom = [0.0] * len(starts)
    for op in ops:
        shares = []
        for start in starts:
            chunk = nodes[start:start + size]
            shares.append(sum(n.operator == op for n in chunk) / len(chunk))
        ax.bar(starts, shares, width=size * 0.95, align="edge", bottom=bottom,
               color=colours[op], label=label(op))
        bottom = [b + v for b, v in zip(bottom, shares)]
    ax.set(xlabel=f"proposals (windows of {size})", ylabel="share of proposals", ylim=(0, 1),
           title="operator shares over the run")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fig


def llm(d: RunData) -> Figure | None:
    """Tokens per call, cumulative cost and latency of the LLM calls behind the proposals."""
    usage = d.llm
    if not usage.calls:
        return None
    fig, (tokens, cost, latency) = _figure(cols=3, height=3.2)
    calls = list(range(1, usage.calls + 1))
    # Lines, not a bar per call: a long agent run makes tens of thousands of calls.
    style = {"lw": 0.8} if usage.calls > 60 else {"lw": 1.0, "marker": "o", "ms": 3}
    tokens.plot(calls, usage.tokens_in, color="#1f77b4", label="in", **style)
    tokens.plot(calls, usage.tokens_out, color="#ff7f0e", label="out", **style)
    tokens.set(xlabel="LLM call", ylabel="tokens", title="tokens per call")
    tokens.legend(fontsize=8, loc="center right")
    running, total = [], 0.0
    for c in usage.cost:
        total += c
        running.append(total)
    cost.plot(calls, running, color="#2ca02c")
    cost.set(xlabel="LLM call", ylabel="cumulative cost", title=f"cost (total {total:.4g})")
    latency.hist(usage.latency_s, bins=min(30, max(5, usage.calls // 3)), color="#9467bd")
    latency.set(xlabel="latency (s)", ylabel="calls", title="latency per call")
    return fig


def failures(d: RunData, limit: int = 12) -> Figure | None:
    """How many failed or invalid candidates each reason (the error's last line) accounts for."""
    if not d.failure_reasons:
        return None
    common = d.failure_reasons.most_common(limit)
    fig, (ax,) = _figure(height=1.2 + 0.3 * len(common), left=5.0)
    names = [label(r) for r, _ in reversed(common)]
    ax.barh(range(len(common)), [n for _, n in reversed(common)], color="#d62728")
    ax.set_yticks(range(len(common)), names, fontsize=8)
    ax.set(xlabel="failed or invalid candidates", title="failures by reason")
    return fig


def draw(kind: str, datas: Sequence[RunData]) -> Figure | None:
    """One figure of `kind` for the runs (the progress figure compares them; the others show
    the first)."""
    if kind == "progress":
        return progress(datas)
    d = datas[0]
    if kind == "pareto":
        return pareto(d)
    if kind == "lineage":
        return lineage(d, operator_colors(datas))
    if kind == "operators":
        return operators(d, operator_colors(datas))
    if kind == "llm":
        return llm(d)
    if kind == "failures":
        return failures(d)
    raise ValueError(f"unknown figure {kind!r}; one of {', '.join(KINDS)}")
