"""Print the peer table (Markdown) from results/peers.jsonl and results/tickr.json, as written by run.sh."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = [
    ("enqueue 1-by-1 /s", "enqueue_per_s", "{:,.0f}"),
    ("drain /s (1 worker)", "drain_per_s", "{:,.0f}"),
    ("start p50 ms", "lat_p50", "{:.2f}"),
    ("start p99 ms", "lat_p99", "{:.2f}"),
    ("delayed p50 ms", "delay_p50", "{:.1f}"),
    ("delayed p99 ms", "delay_p99", "{:.1f}"),
]


def tickr_row(path: Path) -> dict[str, object]:
    report = json.loads(path.read_text())
    r = report["results"]
    pick = {
        "enqueue_per_s": r.get("enqueue", {}).get("metrics", {}).get("one_by_one_per_s"),
        "drain_per_s": r.get("drain", {}).get("metrics", {}).get("jobs_per_s"),
        "lat_p50": r.get("latency", {}).get("metrics", {}).get("p50_ms"),
        "lat_p99": r.get("latency", {}).get("metrics", {}).get("p99_ms"),
        "delay_p50": r.get("delayed", {}).get("metrics", {}).get("p50_ms"),
        "delay_p99": r.get("delayed", {}).get("metrics", {}).get("p99_ms"),
    }
    concurrency = report["settings"]["concurrency"]
    return {"peer": f"tickr {report['machine']['tickr']}", "settings": f"concurrency {concurrency} (default)", **pick}


def cell(row: dict[str, object], key: str, fmt: str) -> str:
    value = row.get(key)
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    return fmt.format(value)


def main() -> None:
    results = HERE / "results"
    rows: list[dict[str, object]] = []
    if (results / "tickr.json").exists():
        rows.append(tickr_row(results / "tickr.json"))
    if (results / "peers.jsonl").exists():
        rows += [json.loads(line) for line in (results / "peers.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        sys.exit("no results: run benchmarks/peers/run.sh first")
    print("| peer | " + " | ".join(name for name, _, _ in COLUMNS) + " | settings |")
    print("|---|" + "---:|" * len(COLUMNS) + "---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['peer']} | " + " | ".join("—" for _ in COLUMNS) + f" | {row['error']} |")
            continue
        cells = " | ".join(cell(row, key, fmt) for _, key, fmt in COLUMNS)
        print(f"| {row['peer']} | {cells} | {row.get('settings', '')} |")


if __name__ == "__main__":
    main()
