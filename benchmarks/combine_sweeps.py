"""One table over the seeds of one grid swept in several directories.

    python benchmarks/combine_sweeps.py --sweep=gin/sweeps/fast_ladder.gin \\
        --csv=docs/results/fast_ladder_seed0.csv --csv=sweeps/fast_ladder_s12/results.csv \\
        --output=docs/results/fast_ladder

A sweep's seeds can be trained in separate directories (``--first_seed``), for example on two
machines or in two sessions. This reads their results.csv files, refuses a (cell, seed) that
appears twice or a cell that is not in the sweep file's grid, and writes OUTPUT.csv (every row),
OUTPUT.md (mean ± std per cell, as results.md) and OUTPUT_fd.png (as fd.png).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ganpipe import sweeps  # noqa: E402


def read_rows(paths: list[str], known: set[str]) -> list[dict]:
    rows, seen = [], {}
    for path in paths:
        with open(path) as f:
            for row in csv.DictReader(f):
                row = {k: v for k, v in row.items() if v != ""}  # empty: not measured
                key = (row["cell"], int(row["seed"]))
                if row["cell"] not in known:
                    raise SystemExit(f"{path}: cell {row['cell']!r} is not in the sweep's grid.")
                if key in seen:
                    raise SystemExit(f"{path}: {key} is also in {seen[key]}.")
                seen[key] = path
                rows.append(row)
    return sorted(rows, key=lambda r: (int(r["seed"]), r["cell"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", required=True, help="The sweep file all the runs came from.")
    parser.add_argument("--csv", action="append", required=True, help="A results.csv; repeat.")
    parser.add_argument("--output", required=True, help="Prefix of the files written.")
    args = parser.parse_args()
    cell_list = sweeps.cells(sweeps.load_sweep_file(args.sweep))
    rows = read_rows(args.csv, {cell.name for cell in cell_list})
    paths = [args.output + ending for ending in (".csv", ".md", "_fd.png")]
    table = sweeps.write_tables(rows, cell_list, *paths)
    seeds = sorted({int(r["seed"]) for r in rows})
    print(f"{len(rows)} runs, seeds {seeds}:\n{table}")


if __name__ == "__main__":
    main()
