"""Print a ``make bench`` result as a Markdown table (for docs/performance.md).

    python benchmarks/report.py benchmarks/results/latest.json [--before OLD.json]

With ``--before``, a column shows the same figure from an earlier result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def fmt(value: object, digits: int) -> str:
    if isinstance(value, str):
        return value
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def shown_digits(row: dict) -> int:
    """The row's digits, one more while a missed median would read as its target once rounded
    (0.4975 against "≥ 0.5" shows as 0.497, not 0.50)."""
    d = int(row.get("digits", 0))
    target = "".join(c for c in row.get("target", "") if c.isdigit() or c == ".")
    if row.get("met") is False and isinstance(row.get("median"), float) and target:
        while d < 4 and fmt(row["median"], d) == fmt(float(target), d):
            d += 1
    return d


def cell(row: dict) -> str:
    if row.get("median") in (None, "n/a"):
        return "n/a"
    d = shown_digits(row)
    text = fmt(row["median"], d)
    if "min" in row and row["min"] != row["max"]:
        text += f" ({fmt(row['min'], d)}–{fmt(row['max'], d)})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("result")
    parser.add_argument("--before")
    opts = parser.parse_args()
    result = json.loads(Path(opts.result).read_text())
    before = {}
    if opts.before:
        for row in json.loads(Path(opts.before).read_text())["rows"]:
            before[(row["figure"], row["metric"])] = row
    head = ["what", "target", "median (min–max)", ""]
    if before:
        head.insert(3, "before")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    figure = None
    for row in result["rows"]:
        if row["figure"] != figure:
            figure = row["figure"]
            print(f"| **{figure}** |" + " |" * (len(head) - 1))
        unit = f" {row['unit']}" if row["unit"] and row.get("median") not in (None, "n/a") else ""
        met = {True: "✓", False: "missed", None: ""}[row.get("met")]
        if row.get("note"):
            met = row["note"]
        cells = [row["metric"], row["target"], cell(row) + unit]
        if before:
            old = before.get((row["figure"], row["metric"]))
            cells.append(cell(old) + unit if old else "")
        cells.append(met)
        print("| " + " | ".join(cells) + " |")
    m = result["machine"]
    print(
        f"\n{result['repeat']} fresh processes per figure, {result['seconds']:.0f} s in all; "
        f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, SQLite {m['sqlite']}; "
        f"load average at start {m['load_at_start'][0]:.1f}."
    )


if __name__ == "__main__":
    main()
