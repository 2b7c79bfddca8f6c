"""The archive's transparency log: an append-only Merkle tree built the RFC 9162 way.

Every sealed record is a leaf. Hashes are domain-separated, so a leaf can never pass for an
inner node (the second-preimage attack on plain Merkle trees):

    leaf hash  = SHA-256(0x00 || leaf data)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")

The tree over n leaves splits at k, the largest power of two below n (RFC 9162 §2.1.1), so the
left part is always a perfect subtree. A *perfect* subtree (2^level leaves starting at a
multiple of 2^level) never changes once complete; the log stores those hashes and answers
any range the proofs need from at most ~2·log n of them (`RangeHasher`).

Proofs (§2.1.3 inclusion, §2.1.4 consistency) and their verification follow the RFC's
algorithms; verification needs only the proof, the leaf or the two roots and the tree sizes,
so anyone holding a signed checkpoint can check the archive without trusting its database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# A source of perfect subtree hashes: (level, index) -> the hash of leaves
# [index·2^level, (index+1)·2^level). Level 0 is the leaf hashes themselves.
PerfectNode = Callable[[int, int], bytes]


class RangeHasher:
    """MTH(D[start:end]) for the ranges the tree's recursion produces, from perfect nodes."""

    def __init__(self, node: PerfectNode) -> None:
        self.node = node

    def hash(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self.node(n.bit_length() - 1, start // n)
        k = split_point(n)
        return node_hash(self.hash(start, start + k), self.hash(start + k, end))


def root(size: int, node: PerfectNode) -> bytes:
    return RangeHasher(node).hash(0, size)


def inclusion_proof(index: int, size: int, node: PerfectNode) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    hasher = RangeHasher(node)
    path: list[bytes] = []

    def walk(m: int, start: int, end: int) -> None:
        n = end - start
        if n == 1:
            return
        k = split_point(n)
        if m < k:
            walk(m, start, start + k)
            path.append(hasher.hash(start + k, end))
        else:
            walk(m - k, start + k, end)
            path.append(hasher.hash(start, start + k))

    walk(index, 0, size)
    return path


def consistency_proof(first: int, second: int, node: PerfectNode) -> list[bytes]:
    """PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    hasher = RangeHasher(node)
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                proof.append(hasher.hash(start, end))
            return
        k = split_point(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            proof.append(hasher.hash(start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(hasher.hash(start, start + k))

    subproof(first, 0, second, True)
    return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: whether `leaf` (a leaf hash) is at `index` of the tree whose root,
    at `size` leaves, is `expected_root`."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: whether the tree of `second` leaves with `second_root` extends the
    tree of `first` leaves with `first_root` (nothing in it changed, was removed or moved)."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        # The first tree is a perfect subtree: its root is the proof's implicit first node.
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


def new_perfect_nodes(index: int, leaf: bytes, node: PerfectNode) -> list[tuple[int, int, bytes]]:
    """The perfect nodes that appending leaf number `index` completes: the leaf itself, and
    while it closes a right child, each parent. What a log stores per append: amortised two."""
    made = [(0, index, leaf)]
    level, i, h = 0, index, leaf
    while i & 1:
        h = node_hash(node(level, i - 1), h)
        level, i = level + 1, i >> 1
        made.append((level, i, h))
    return made


class MemoryTree:
    """An in-memory log (tests, and verifying an exported set of leaves offline)."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    def append(self, data: bytes) -> int:
        index = self.size
        for level, i, h in new_perfect_nodes(index, leaf_hash(data), self.node):
            self.nodes[(level, i)] = h
        self.size += 1
        return index

    def root(self, size: int | None = None) -> bytes:
        return root(self.size if size is None else size, self.node)


def nodes_needed(compute: Callable[[PerfectNode], object]) -> set[tuple[int, int]]:
    """The perfect nodes a computation (a root, a proof) reads. The recursion's shape depends
    only on sizes and indices, never on hash values, so one dry run with placeholder hashes
    names them all: a store can then fetch exactly those in one query."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return bytes(HASH_SIZE)

    compute(record)
    return wanted


def append_needs(index: int) -> set[tuple[int, int]]:
    """The stored nodes `new_perfect_nodes(index, …)` reads: the left siblings it closes."""
    wanted: set[tuple[int, int]] = set()
    level, i = 0, index
    while i & 1:
        wanted.add((level, i - 1))
        level, i = level + 1, i >> 1
    return wanted
