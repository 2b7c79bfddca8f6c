"""Counting SQLite write transactions from outside the process that makes them.

In WAL mode every connection shares the wal-index (the `-shm` file). Its header holds
`iChange`, a counter SQLite increments on each commit that writes to the WAL (read-only and
empty transactions leave it alone), stored twice (at offsets 0 and 48) in native byte order.
Reading it changes nothing and costs the services nothing.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

_HEADER = 48
_ICHANGE = 8


def parse_ichange(header: bytes) -> int | None:
    """iChange from the first 96 bytes of a `-shm` file, or None when the two copies differ
    (a writer is updating them right now) or the file is too short."""
    if len(header) < 2 * _HEADER:
        return None
    if header[:_HEADER] != header[_HEADER : 2 * _HEADER]:
        return None
    order = "<" if sys.byteorder == "little" else ">"
    return int(struct.unpack_from(order + "I", header, _ICHANGE)[0])


def write_transactions(database: Path, attempts: int = 50) -> int | None:
    """The database's write-transaction counter now, or None when there is no wal-index."""
    shm = database.with_name(database.name + "-shm")
    for _ in range(attempts):
        try:
            with open(shm, "rb") as f:
                value = parse_ichange(f.read(2 * _HEADER))
        except OSError:
            return None
        if value is not None:
            return value
    return None


def delta(before: int, after: int) -> int:
    """after - before for a 32-bit counter that may wrap."""
    return (after - before) % 2**32
