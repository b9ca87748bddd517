"""The mutation score per module, from the results `mutmut run` left in mutants/.

`make mutation` runs it after mutmut: one row per mutated module (pyproject.toml,
[tool.mutmut] only_mutate), then every mutant that was not killed, with its diff.
Exits 1 when a module has more than ``--max-survived`` per cent of its mutants alive:
"survived" counts every mutant not killed (the tests passed, no test reached it, or
an odd exit that mutmut calls suspicious); "(no test)" is the part no test reached.

    python bench/mutation_report.py [--markdown] [--no-diffs] [--max-survived 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parent.parent
# mutmut's statuses, as this report counts them. A timeout counts as detected: the mutant
# made the tests hang (a loop that never ends), which a run would notice too.
DETECTED = {"killed", "timeout", "caught by type check"}
NOT_RUN = {"not checked", "check was interrupted by user", "skipped"}


@dataclass
class ModuleScore:
    path: str
    statuses: Counter[str] = field(default_factory=Counter)
    alive: list[tuple[str, str]] = field(default_factory=list)  # (mutant, status)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def killed(self) -> int:
        return self.statuses["killed"] + self.statuses["caught by type check"]

    @property
    def timeout(self) -> int:
        return self.statuses["timeout"]

    @property
    def survived(self) -> int:
        return len(self.alive)

    @property
    def no_test(self) -> int:
        return self.statuses["no tests"]

    @property
    def not_run(self) -> int:
        return sum(self.statuses[s] for s in NOT_RUN)

    @property
    def survived_percent(self) -> float:
        return 100.0 * self.survived / self.total if self.total else 0.0


def mutated_paths() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def score(path: str) -> ModuleScore:
    result = ModuleScore(path=path)
    meta = ROOT / "mutants" / f"{path}.meta"
    if not meta.exists():
        return result
    exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
    for mutant, exit_code in sorted(exit_codes.items(), key=lambda kv: _natural(kv[0])):
        status = status_by_exit_code[exit_code]
        result.statuses[status] += 1
        if status not in DETECTED and status not in NOT_RUN:
            result.alive.append((mutant, status))
    return result


def _natural(mutant: str) -> tuple[str, int]:
    name, _, number = mutant.rpartition("__mutmut_")
    return name, int(number) if number.isdigit() else 0


def table(scores: list[ModuleScore], *, markdown: bool) -> str:
    header = ["module", "mutants", "killed", "timeout", "survived", "(no test)", "survived %"]
    rows = [
        [
            s.path,
            str(s.total),
            str(s.killed),
            str(s.timeout),
            str(s.survived),
            str(s.no_test),
            f"{s.survived_percent:.1f}",
        ]
        for s in scores
    ]
    totals = [sum(getattr(s, attr) for s in scores) for attr in ("total", "killed", "timeout")]
    survived = sum(s.survived for s in scores)
    rows.append(
        [
            "all",
            *map(str, totals),
            str(survived),
            str(sum(s.no_test for s in scores)),
            f"{100.0 * survived / totals[0] if totals[0] else 0.0:.1f}",
        ]
    )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="the table as Markdown (README)")
    parser.add_argument("--no-diffs", action="store_true", help="list survivors without diffs")
    parser.add_argument("--max-survived", type=float, default=10.0, metavar="PERCENT")
    args = parser.parse_args()
    os.chdir(ROOT)  # mutmut reads mutants/ relative to the working directory

    scores = [score(path) for path in mutated_paths()]
    if not any(s.total for s in scores):
        print("no mutation results in mutants/: run `make mutation` first", file=sys.stderr)
        return 2
    for s in scores:
        if not s.alive:
            continue
        print(f"\n== {s.path}: {s.survived} not killed")
        for mutant, status in s.alive:
            print(f"-- {mutant} ({status})")
            if not args.no_diffs:
                print(get_diff_for_mutant(mutant, path=s.path))
    unfinished = sum(s.not_run for s in scores)
    print()
    print(table(scores, markdown=args.markdown))
    if unfinished:
        print(f"\n{unfinished} mutants not tested yet (the run was interrupted?)")
    over = [s.path for s in scores if s.survived_percent > args.max_survived]
    if over:
        print(f"\nmore than {args.max_survived:g} % of the mutants survive in: {', '.join(over)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
