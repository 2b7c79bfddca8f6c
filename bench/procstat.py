"""CPU and memory of processes, read from /proc (Linux).

CPU is utime+stime from /proc/<pid>/stat. A process tree's CPU adds its reaped children's
(cutime+cstime) and its live children's: the difference of two readings is then exact over the
interval even for children that started or exited within it (a PostgreSQL backend, say), as
long as the root reaps them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    utime: int  # clock ticks
    stime: int
    cutime: int
    cstime: int

    @property
    def own_ticks(self) -> int:
        return self.utime + self.stime

    @property
    def tree_ticks(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> Stat:
    """Parses one /proc/<pid>/stat line. The command name (field 2) is in parentheses and may
    itself hold spaces and parentheses: the fields after it start after the last ')'."""
    pid = int(text[: text.index(" ")])
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime is field 14, so rest[11].
    return Stat(
        pid=pid,
        ppid=int(rest[1]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        cutime=int(rest[13]),
        cstime=int(rest[14]),
    )


def read_stat(pid: int, proc: Path = PROC) -> Stat | None:
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def all_stats(proc: Path = PROC) -> dict[int, Stat]:
    stats = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def tree_cpu_seconds(roots: dict[str, int], proc: Path = PROC) -> dict[str, float]:
    """CPU seconds used so far by each named root process and its descendants (live ones, and
    the exited ones it reaped). A root that is gone counts 0."""
    stats = all_stats(proc)
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    result = {}
    for name, root in roots.items():
        if root not in stats:
            result[name] = 0.0
            continue
        ticks = 0
        todo = [root]
        while todo:
            pid = todo.pop()
            ticks += stats[pid].tree_ticks
            todo.extend(children.get(pid, ()))
        result[name] = ticks / CLOCK_TICKS
    return result


def parse_rss_kib(status_text: str) -> int | None:
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def rss_mib(pid: int, proc: Path = PROC) -> float | None:
    try:
        kib = parse_rss_kib((proc / str(pid) / "status").read_text())
    except OSError:
        return None
    return None if kib is None else kib / 1024
