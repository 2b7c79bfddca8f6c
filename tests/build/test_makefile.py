"""The Makefile is the front door: every target does something and `make help` names it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = REPO / "Makefile"


def _rules() -> tuple[set[str], dict[str, tuple[list[str], list[str]]]]:
    """The .PHONY targets, and each rule's prerequisites and recipe lines."""
    text = re.sub(r"\\\n", " ", MAKEFILE.read_text())
    phony: set[str] = set()
    rules: dict[str, tuple[list[str], list[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("\t") and current is not None:
            rules[current][1].append(line.strip())
            continue
        match = re.match(r"^([A-Za-z0-9_.$()/-]+)\s*:(?!=)\s*(.*)$", line)
        if not match:
            current = None
            continue
        target, rest = match.group(1), match.group(2).split("##")[0].split()
        if target == ".PHONY":
            phony.update(rest)
            current = None
        else:
            current = target
            rules[target] = (rest, [])
    return phony, rules


def test_every_declared_target_has_work_to_do() -> None:
    """A phony target runs a recipe or builds a file, never nothing (exit 0, nothing done)."""
    phony, rules = _rules()
    assert {"help", "run", "test", "lint", "typecheck", "test-integration"} <= phony
    idle = []
    for target in sorted(phony):
        assert target in rules, f"{target} is declared .PHONY but has no rule"
        prerequisites, recipe = rules[target]
        builds_a_file = any(p not in phony for p in prerequisites)
        if not recipe and not builds_a_file:
            idle.append(target)
    assert not idle, f"targets that do nothing: {idle}"


def test_make_help_lists_every_target() -> None:
    phony, _ = _rules()
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    listed = {line.split()[0] for line in shown.stdout.splitlines() if line.strip()}
    assert listed == phony, {"not listed": phony - listed, "not a target": listed - phony}
