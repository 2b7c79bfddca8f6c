"""Reading the archive: one dossier, pages of dossiers, and verification of the whole chain."""

from __future__ import annotations

import base64
import binascii
from contextlib import aclosing
from dataclasses import dataclass

from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.domain.chain import ChainVerdict, ChainVerifier, SealedDossier
from orderline_runtime.database import Database
from orderline_runtime.errors import NotFound

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class BadPageToken(ValueError):
    pass


def encode_page_token(after_sequence: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{after_sequence}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    """The sequence a page starts after; an empty token starts at the beginning."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadPageToken("not a page token from ListDossiers") from None
    prefix, _, number = raw.partition(":")
    if prefix != "seq" or not number.isdigit():
        raise BadPageToken("not a page token from ListDossiers")
    return int(number)


@dataclass(frozen=True)
class DossierPage:
    dossiers: list[SealedDossier]
    next_page_token: str


class ArchiveQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_dossier(self, order_id: str) -> SealedDossier:
        async with self.db.sessions() as session:
            dossier = await DossierRepository(session).get_by_order(order_id)
        if dossier is None:
            raise NotFound("dossier", order_id)
        return dossier

    async def list_dossiers(self, page_size: int, after_sequence: int) -> DossierPage:
        """Dossiers in chain order, documents without their content (GetDossier has it)."""
        size = page_size or DEFAULT_PAGE_SIZE
        async with self.db.sessions() as session:
            # One more than asked, to know whether another page follows.
            rows = await DossierRepository(session).page(
                after_sequence, size + 1, with_content=False
            )
        page, more = rows[:size], len(rows) > size
        token = encode_page_token(page[-1].sequence) if more and page else ""
        return DossierPage(page, token)

    async def verify_chain(self) -> ChainVerdict:
        """Recomputes every hash in sequence order, up to the head read first (dossiers sealed
        meanwhile are left for the next check)."""
        verifier = ChainVerifier()
        async with self.db.sessions() as session:
            repo = DossierRepository(session)
            head = await repo.head()
            async with aclosing(repo.chain()) as chain:
                async for dossier in chain:
                    if dossier.sequence > head.sequence:
                        break
                    verifier.feed(dossier)
            verifier.expect_head(head.sequence, head.content_hash, head.dossier_id)
        return verifier.verdict()
