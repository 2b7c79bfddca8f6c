"""The transparency log's Merkle tree: RFC 6962/9162 hashes, inclusion and consistency proofs,
and that a proof fails for any change, removal or reordering of a record."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from orderline_archive.domain.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# The reference leaves and roots used by RFC 6962 implementations (certificate-transparency).
RFC6962_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH straight from the RFC's definition, for comparison."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def tree_of(leaves: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree


def test_roots_match_the_rfc6962_reference_vectors() -> None:
    tree = MemoryTree()
    assert tree.root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for data, expected in zip(RFC6962_LEAVES, RFC6962_ROOTS, strict=True):
        tree.append(bytes.fromhex(data))
        assert tree.root().hex() == expected
    # Every earlier size is still answerable from the stored perfect subtrees.
    for size, expected in enumerate(RFC6962_ROOTS, start=1):
        assert tree.root(size).hex() == expected


def test_a_leaf_cannot_pass_for_an_inner_node() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(left + right) != node_hash(left, right)


leaves_st = st.lists(st.binary(max_size=12), min_size=1, max_size=70)


@given(leaves=leaves_st)
def test_every_record_has_an_inclusion_proof_of_logarithmic_length(leaves: list[bytes]) -> None:
    tree = tree_of(leaves)
    root = tree.root()
    assert root == naive_root(leaves)
    for index, data in enumerate(leaves):
        proof = inclusion_proof(index, tree.size, tree.node)
        assert len(proof) <= max(1, (tree.size - 1).bit_length())
        assert verify_inclusion(leaf_hash(data), index, tree.size, proof, root)


@given(
    leaves=st.lists(st.binary(max_size=12), min_size=1, max_size=70, unique=True), data=st.data()
)
def test_an_inclusion_proof_fails_for_a_changed_record_position_or_root(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = tree_of(leaves)
    root = tree.root()
    index = data.draw(st.integers(0, tree.size - 1))
    proof = inclusion_proof(index, tree.size, tree.node)
    leaf = leaf_hash(leaves[index])
    assert not verify_inclusion(leaf_hash(leaves[index] + b"!"), index, tree.size, proof, root)
    other = data.draw(st.integers(0, tree.size - 1))
    if other != index:
        assert not verify_inclusion(leaf, other, tree.size, proof, root)
    assert not verify_inclusion(leaf, index, tree.size, proof, hashlib.sha256(root).digest())
    if proof:
        tampered = [*proof[:-1], hashlib.sha256(proof[-1]).digest()]
        assert not verify_inclusion(leaf, index, tree.size, tampered, root)
        assert not verify_inclusion(leaf, index, tree.size, proof[:-1], root)


@given(leaves=leaves_st, data=st.data())
def test_a_later_tree_proves_it_extends_an_earlier_one(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = tree_of(leaves)
    first = data.draw(st.integers(1, tree.size))
    proof = consistency_proof(first, tree.size, tree.node)
    assert len(proof) <= 2 * max(1, tree.size.bit_length())
    assert verify_consistency(first, tree.size, tree.root(first), tree.root(), proof)


@given(leaves=st.lists(st.binary(max_size=8), min_size=2, max_size=40), data=st.data())
def test_consistency_fails_when_an_earlier_record_changed_vanished_or_moved(
    leaves: list[bytes], data: st.DataObject
) -> None:
    """An archive that rewrote its history cannot prove the new tree extends a checkpoint an
    auditor kept: the old root no longer verifies against any proof it can give."""
    first = data.draw(st.integers(1, len(leaves) - 1))
    kept_root = tree_of(leaves[:first]).root()
    index = data.draw(st.integers(0, first - 1))
    changed = list(leaves)
    edit = data.draw(st.sampled_from(["change", "delete", "swap"]))
    if edit == "change":
        changed[index] = changed[index] + b"\x00tampered"
    elif edit == "delete":
        del changed[index]
        changed.append(b"filler")  # the same size as before, so only the content differs
    else:
        other = data.draw(st.integers(0, len(leaves) - 1))
        changed[index], changed[other] = changed[other], changed[index]
    rewritten = tree_of(changed)
    if rewritten.root(first) == kept_root:
        return  # the edit did not touch the first `first` records (e.g. swapped equal ones)
    proof = consistency_proof(first, rewritten.size, rewritten.node)
    assert not verify_consistency(first, rewritten.size, kept_root, rewritten.root(), proof)


def test_bad_sizes_are_refused() -> None:
    tree = tree_of([b"a", b"b", b"c"])
    root = tree.root()
    assert not verify_inclusion(leaf_hash(b"a"), 3, 3, [], root)
    assert not verify_consistency(0, 3, EMPTY_ROOT, root, [])
    assert not verify_consistency(2, 3, tree.root(2), root, [])
    assert verify_consistency(3, 3, root, root, [])
    assert not verify_consistency(3, 3, root, root, [root])
