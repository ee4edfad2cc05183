"""The peer table (Markdown, measurements as rows, peers as columns) from results/peers.jsonl, as run.sh writes it.

python3 report.py                  # print it
python3 report.py --write-docs     # and put it between the peers-table markers of docs/benchmarks.md
python3 report.py --record-machine # (run.sh) note the CPU, cores, Redis version and date in results/
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOCS = HERE.parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- peers-table:begin -->", "<!-- peers-table:end -->"
ORDER = ["tickr", "sidekiq", "bullmq", "celery", "celery (acks_late)", "rq", "dramatiq", "arq", "saq", "huey", "taskiq"]
# (label, key, format, better): better is "high", "low" or "near0" (lateness: closest to zero, early counts too)
ROWS = [
    ("drain, jobs/s (in-process counter)", "drain_per_s", "{:,.0f}", "high"),
    ("drain, jobs/s (one INCR per job)", "drain_incr_per_s", "{:,.0f}", "high"),
    ("Redis CPU per job, µs (drain)", "redis_cpu_us_per_job", "{:.1f}", "low"),
    ("Redis commands per job (drain)", "redis_cmds_per_job", "{:.1f}", "low"),
    ("enqueue, one call per job, jobs/s", "enqueue_per_s", "{:,.0f}", "high"),
    ("bulk enqueue (chunks of 1,000), jobs/s", "bulk_per_s", "{:,.0f}", "high"),
    ("enqueue→start p50, ms (200/s)", "lat_p50", "{:.2f}", "low"),
    ("enqueue→start p99, ms (200/s)", "lat_p99", "{:.2f}", "low"),
    ("delayed lateness p50, ms", "delay_p50", "{:.1f}", "near0"),
    ("delayed lateness p99, ms", "delay_p99", "{:.1f}", "near0"),
    ("kill -9 mid-task: re-run after, s", "kill9_rerun_s", "{:.1f}", "low"),
]


def number(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else None


def cell(row: dict[str, Any], key: str, fmt: str) -> str:
    if "error" in row:
        return "error"
    value = number(row, key)
    if value is None:
        return "never" if key == "kill9_rerun_s" else "—"
    return fmt.format(value)


def header(row: dict[str, Any]) -> str:
    """The peer's name and its package's version."""
    versions = row.get("versions") or {}
    own = [v for k, v in versions.items() if k not in ("python", "redis", "ruby", "node", "redis-py")]
    return f"{row['peer']} {own[0]}" if own else str(row["peer"])


def ratio(rows: list[dict[str, Any]], key: str, better: str) -> str:
    """tickr's value over the best other peer's, and that peer."""
    tickr = next((r for r in rows if r["peer"] == "tickr"), None)
    mine = number(tickr, key) if tickr else None
    others = [(number(r, key), r["peer"]) for r in rows if r["peer"] != "tickr"]
    present = [(v, p) for v, p in others if v is not None]
    if mine is not None and not present and others:
        return "tickr only"
    if mine is None or not present:
        return "—"
    pick = {"high": max, "low": min}.get(better)
    best, peer = pick(present) if pick else min(present, key=lambda vp: abs(vp[0]))
    if better == "near0":
        mine, best = abs(mine), abs(best)
    return f"{mine / best:.2f} ({peer})" if best else "—"


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| | " + " | ".join(header(r) for r in rows) + " | tickr / best peer |",
        "|---|" + "---:|" * len(rows) + "---|",
    ]
    for label, key, fmt, better in ROWS:
        cells = " | ".join(cell(r, key, fmt) for r in rows)
        lines.append(f"| {label} | {cells} | {ratio(rows, key, better)} |")
    return lines


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per peer: its settings, or why it has no figures."""
    lines = []
    for row in rows:
        text = f"error: {row['error']}" if "error" in row else row.get("settings", "")
        lines.append(f"- **{row['peer']}**: {text}")
    return lines


def machine_line(rows: list[dict[str, Any]]) -> str:
    machine = json.loads((RESULTS / "machine.json").read_text()) if (RESULTS / "machine.json").exists() else {}
    n = next((r.get("n") for r in rows if r.get("n")), None)
    runs = machine.get("runs", "?")
    runs = f"medians of {runs} runs" if runs != 1 else "1 run"
    return (
        f"Measured {machine.get('date', '?')} on {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('redis', 'Redis ?')} (private server); N = {n:,} jobs, {runs} (drain, enqueue, bulk); "
        "latency, delayed and kill -9 once."
        if n
        else "No figures."
    )


def load() -> list[dict[str, Any]]:
    path = RESULTS / "peers.jsonl"
    if not path.exists():
        sys.exit("no results: run benchmarks/peers/run.sh first")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(rows, key=lambda r: rank.get(r["peer"], len(ORDER)))


def render(rows: list[dict[str, Any]]) -> str:
    legend = (
        "tickr / best peer: tickr's figure divided by the best other peer's (named); above 1 is better for rates, "
        "below 1 for costs and times; lateness compares distances from zero (negative: started early)."
    )
    return "\n".join([machine_line(rows), "", *table(rows), "", legend, "", *notes(rows)])


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        sys.exit(f"{DOCS}: markers {BEGIN} / {END} not found")
    DOCS.write_text(doc[: start + len(BEGIN)] + "\n" + text + "\n" + doc[end:])
    print(f"wrote the table into {DOCS}", file=sys.stderr)


def record_machine() -> None:
    """CPU model, cores, Redis version (of PEER_REDIS_URL) and date, for the table's first line."""
    import redis

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    server = redis.Redis.from_url(os.environ["PEER_REDIS_URL"]).info("server")
    name = "Valkey" if "valkey_version" in server else "Redis"
    machine = {
        "cpu": model,
        "cores": os.cpu_count(),
        "redis": f"{name} {server.get('valkey_version', server.get('redis_version'))}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "runs": int(os.environ.get("PEER_RUNS", "3")),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "machine.json").write_text(json.dumps(machine))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help="rewrite the table in docs/benchmarks.md")
    parser.add_argument("--record-machine", action="store_true", help="write results/machine.json and exit")
    args = parser.parse_args()
    if args.record_machine:
        record_machine()
        return
    text = render(load())
    print(text)
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
