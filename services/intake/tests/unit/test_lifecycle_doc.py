"""docs/order-lifecycle.md publishes the transition table; it must say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from orderline_intake.domain.states import TRANSITIONS

DOC = Path(__file__).resolve().parents[4] / "docs" / "order-lifecycle.md"


def test_published_table_matches_the_state_machine() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` \|$", DOC.read_text(), re.MULTILINE)
    published = {(src, trig): dst for src, trig, dst in rows}
    actual = {(s.value, t.value): d.value for (s, t), d in TRANSITIONS.items()}
    assert published == actual
