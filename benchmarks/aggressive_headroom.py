"""At each task's aggressive peak, is there room to beat the tuned warmup, and who does?

Issue 16 asks ``auto_warmup`` to beat the warmup tuned at the peak (a win, paired by seed) at
half the aggressive-peak cells. A method beats every linear warmup length at a peak mostly by
training as if the peak were lower (cutting it, as AutoWU and ``auto_warmup``'s rules do), which
pays only where the tuned warmup at the aggressive peak ends well above the tuned warmup's best
over the whole ladder. For every task this prints the aggressive peak (the largest rung where
no seed of the tuned warmup failed), the tuned warmup's mean final score there over its best
mean over (peak, warmup) (the **headroom**; means of 3-5 seeds, unpaired, so a guide and not a
test), and every method of the benchmark that won the cell, ``auto_warmup`` marked.

It reads the benchmark's own printed tables in ``docs/results.md`` (the "discriminates" tables
for the aggressive peaks and the per-task tables for the rest; most tiers' stores are not kept),
so each task's cells are as its split's tier last ran them; it runs nothing (a second).

    python benchmarks/aggressive_headroom.py [--results docs/results.md] [--headroom 1.2]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results.md"
HEADING = re.compile(r"^##### (\S+) \((\w+)\)")
AGGRESSIVE = re.compile(r"^\| (\S+) \| (\w+) \| ([0-9.e-]+) \| .* \| (yes|no) \|$")
TUNED = re.compile(r"^\| ([0-9.e-]+) \| (?:no warmup|linear \d+%) \| ([0-9.e-]+) ±")
BEST = re.compile(r"^Tuned baseline's best over \(peak, warmup\): .* at [0-9.e-]+, ([0-9.e-]+) ±")
HEADER = re.compile(r"^\| method \| (.*) \| best / tuned best \|")
LETTER = re.compile(r" ([WTL])$")
AUTO = "auto"


def parse(text: str) -> list[dict]:
    """One record per task section: name, split, aggressive peak, tuned mean there, tuned best
    mean, and the methods that won at the aggressive peak (with ``auto``'s letter there)."""
    aggressive = {m.group(1): float(m.group(3)) for m in map(AGGRESSIVE.match, text.splitlines()) if m}
    tasks, current, peaks = [], None, []
    for line in text.splitlines():
        if heading := HEADING.match(line):
            current = {"task": heading.group(1), "split": heading.group(2), "tuned": {}, "letters": {}}
            current["peak"] = aggressive.get(current["task"])
            tasks.append(current)
        elif current is None:
            continue
        elif tuned := TUNED.match(line):
            current["tuned"][float(tuned.group(1))] = float(tuned.group(2))
        elif best := BEST.match(line):
            current["best"] = float(best.group(1))
        elif header := HEADER.match(line):
            peaks = [float(p) for p in header.group(1).split(" | ")]
        elif not line.strip():
            peaks = []  # a blank line ends the table
        elif line.startswith("| ") and current["peak"] in peaks:
            cells = [c.strip() for c in line.strip("|").split("|")]
            found = LETTER.search(" " + cells[1 + peaks.index(current["peak"])])
            if found:
                current["letters"][cells[0]] = found.group(1)
    return [t for t in tasks if t["peak"] is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--headroom", type=float, default=1.2, help="a tuned / best ratio counted as room")
    args = parser.parse_args()
    tasks = parse(Path(args.results).read_text())
    print("| task | split | aggressive peak | tuned there / tuned best | won by | auto |")
    print("|---|---|---|---|---|---|")
    rows = []
    for t in tasks:
        room = t["tuned"][t["peak"]] / t["best"] if t["peak"] in t["tuned"] and t.get("best") else None
        winners = sorted(m for m, letter in t["letters"].items() if letter == "W")
        rows.append((t, room, winners))
        print(f"| {t['task']} | {t['split']} | {t['peak']:g} | {'-' if room is None else f'{room:.2f}'} | "
              f"{', '.join(winners) or '-'} | {t['letters'].get(AUTO, '-')} |")
    roomy = [r for r in rows if r[1] is not None and r[1] >= args.headroom]
    print()
    print(f"{len(rows)} aggressive cells; some method won {sum(bool(w) for _, _, w in rows)}, "
          f"auto won {sum(AUTO in w for _, _, w in rows)}")
    print(f"with headroom >= {args.headroom:g}: {len(roomy)} cells; some method won "
          f"{sum(bool(w) for _, _, w in roomy)}, auto won {sum(AUTO in w for _, _, w in roomy)}")
    print(f"below it: {len(rows) - len(roomy)} cells; some method won "
          f"{sum(bool(w) for t, room, w in rows if (room is None or room < args.headroom))}")
    wins = Counter(method for _, _, winners in rows for method in winners)
    losses = Counter(method for t, _, _ in rows for method, letter in t["letters"].items() if letter == "L")
    print("wins / losses at the aggressive cells: " + ", ".join(
        f"{method} {wins[method]} / {losses[method]}" for method in sorted(wins, key=lambda m: -wins[m])))


if __name__ == "__main__":
    main()
