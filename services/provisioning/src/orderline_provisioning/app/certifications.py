"""Operator certifications: grant, revoke, list, and the seed the local stack starts with.

Rules (domain/certification.py): a business type must be in the catalogue; no one grants or
revokes their own certification; revoking needs a reason and an active certification.
"""

from __future__ import annotations

from orderline_catalogue import load_catalogue
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.domain.certification import (
    SEEDED_BY,
    Certification,
    grant,
    parse_seed,
)
from orderline_runtime.clock import Clock
from orderline_runtime.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    PreconditionViolation,
)
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)


class Certifications:
    def __init__(self, uow: UnitOfWorkFactory[JobRepository], clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def grant(self, principal: str, business_type: str, by: str) -> Certification:
        """Idempotent: granting an active certification again returns it unchanged."""
        _not_own(principal, by, "grant")
        async with self.uow() as uow:
            current = await uow.repos.certification(principal, business_type)
            if current is not None and current.active:
                return current
            cert = grant(principal, business_type, by, self.clock())
            await uow.repos.put_certification(cert, exists_already=current is not None)
        log.info("certification granted", principal=principal, business_type=business_type, by=by)
        return cert

    async def revoke(
        self, principal: str, business_type: str, by: str, reason: str
    ) -> Certification:
        _not_own(principal, by, "revoke")
        async with self.uow() as uow:
            current = await uow.repos.certification(principal, business_type)
            if current is None:
                raise NotFound("certification", f"{principal}/{business_type}")
            if not current.active:
                raise FailedPrecondition(
                    f"{principal} is not certified for {business_type}: revoked already",
                    reason="CERTIFICATION_REVOKED",
                    violations=[
                        PreconditionViolation(
                            "STATE", f"{principal}/{business_type}", "revoked already"
                        )
                    ],
                )
            cert = current.revoke(by, reason, self.clock())
            await uow.repos.put_certification(cert, exists_already=True)
        log.info("certification revoked", principal=principal, business_type=business_type, by=by)
        return cert

    async def list(
        self, *, principal: str = "", business_type: str = "", include_revoked: bool = False
    ) -> list[Certification]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.certifications(
                principal=principal, business_type=business_type, include_revoked=include_revoked
            )

    async def seed(self, text: str) -> int:
        """Grants each (principal, business type) of `text` that has no certification row at
        all: a certification a manager revoked stays revoked across restarts."""
        pairs = parse_seed(text, load_catalogue().types)
        added = 0
        async with self.uow() as uow:
            for principal, business_type in pairs:
                if await uow.repos.certification(principal, business_type) is None:
                    cert = grant(principal, business_type, SEEDED_BY, self.clock())
                    await uow.repos.put_certification(cert, exists_already=False)
                    added += 1
        if added:
            log.info("certifications seeded", added=added)
        return added


def _not_own(principal: str, by: str, verb: str) -> None:
    if principal == by:
        raise PermissionDenied(
            f"{by} may not {verb} a certification of their own", reason="OWN_CERTIFICATION"
        )
