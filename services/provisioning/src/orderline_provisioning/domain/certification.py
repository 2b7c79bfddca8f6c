"""Operator certifications (上岗资质): which principal may operate jobs of which business type.

Who "the operator" of a job is: the principal the job's device work runs under. An automated
job runs under the service's automation operator (setting ORDERLINE_PROVISIONING_OPERATOR,
`provisioning` by default), assigned when the worker first takes the job up, so the
automation itself must be certified per business type: a manager who revokes it for, say,
dedicated lines stops those jobs at the checklist until a certified person takes them. Not the
reviewer who approved the order (an approval is not device work) and not the clerk.

Managers grant and revoke (a personnel decision, kept apart from those who do the work); no
one grants or revokes their own. A revocation is kept with who and why; granting again
restores the certification.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

# A principal's subject as tokens carry it (`engineer-dev`, `svc:provisioning`, an e-mail).
PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/+-]{0,63}$")
DEFAULT_OPERATOR = "provisioning"
# `granted_by` of certifications the service seeds at start (ORDERLINE_PROVISIONING_SEED_…).
SEEDED_BY = "seed"


@dataclass(frozen=True)
class Certification:
    principal: str
    business_type: str
    granted_at: datetime
    granted_by: str
    revoked_at: datetime | None = None
    revoked_by: str = ""
    revoke_reason: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def revoke(self, by: str, reason: str, now: datetime) -> Certification:
        return replace(self, revoked_at=now, revoked_by=by, revoke_reason=reason)


def grant(principal: str, business_type: str, by: str, now: datetime) -> Certification:
    """A new grant; over a revoked certification it starts afresh (new time and grantor)."""
    return Certification(principal, business_type, granted_at=now, granted_by=by)


def parse_seed(text: str, business_types: Iterable[str]) -> list[tuple[str, str]]:
    """`provisioning:*,engineer-dev:iptv|fixed_line` -> (principal, business type) pairs;
    `*` is every business type of the catalogue. ValueError names the bad entry."""
    known = list(business_types)
    pairs: list[tuple[str, str]] = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        principal, sep, types = entry.partition(":")
        principal = principal.strip()
        if not sep or not PRINCIPAL.match(principal):
            raise ValueError(f"{entry!r}: expected principal:type|type or principal:*")
        wanted = [t.strip() for t in types.split("|") if t.strip()]
        if wanted == ["*"]:
            wanted = known
        unknown = [t for t in wanted if t not in known]
        if unknown or not wanted:
            raise ValueError(f"{entry!r}: unknown business types {unknown or types!r}")
        pairs += [(principal, t) for t in wanted]
    return pairs
