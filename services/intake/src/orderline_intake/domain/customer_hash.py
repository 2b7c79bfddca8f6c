"""Keyed hashes of the customer's phone and identity numbers, for finding a customer's orders
(ListOrders' customer filter) and the duplicate check without comparing the numbers in clear.

HMAC-SHA256 over the normalised value, prefixed by what it is (`phone:` or `id:`), so that a
phone number and an identity number with the same characters never collide. The key comes from
a setting with its key id; each row keeps the key id it was hashed with, so rows of an earlier
key are hashed again at start (docs/order-lifecycle.md#finding-a-customers-orders).

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

# Digits with the separators people write numbers with.
_SEPARATORS = re.compile(r"[\s().\-]")
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
MAX_QUERY = 64


def normalised_phone(value: str) -> str:
    """E.164 as intake stores it: separators dropped, `00` → `+`, a bare mainland mobile number
    or one with 86 but no `+` gets +86."""
    phone = _SEPARATORS.sub("", value.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if _MAINLAND_MOBILE.match(phone):
        phone = "+86" + phone
    elif phone.startswith("86") and _MAINLAND_MOBILE.match(phone[2:]):
        phone = "+" + phone
    return phone


def normalised_id_number(value: str) -> str:
    """A resident identity or passport number as intake stores it: no spaces, upper case."""
    return re.sub(r"\s", "", value).upper()


@dataclass(frozen=True)
class CustomerHashes:
    phone: str
    id_number: str
    key_id: str


@dataclass(frozen=True)
class CustomerHasher:
    key: bytes
    key_id: str

    def __post_init__(self) -> None:
        if len(self.key) < 32:
            raise ValueError("the customer hash key must have at least 32 bytes")
        if not self.key_id:
            raise ValueError("the customer hash key needs a key id")

    def _mac(self, kind: str, value: str) -> str:
        return hmac.new(self.key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def phone(self, value: str) -> str:
        return self._mac("phone", normalised_phone(value)) if value.strip() else ""

    def id_number(self, value: str) -> str:
        return self._mac("id", normalised_id_number(value)) if value.strip() else ""

    def of(self, phone: str, id_number: str) -> CustomerHashes:
        return CustomerHashes(self.phone(phone), self.id_number(id_number), self.key_id)

    def query(self, value: str) -> tuple[str, str]:
        """What a customer filter matches: the value as a phone number and as an identity
        number (the caller need not say which)."""
        return self.phone(value), self.id_number(value)


# The development key: only when development tokens are allowed (settings.py); anyone can
# compute these hashes, so never outside development.
DEVELOPMENT_KEY = b"orderline-development-customer-hash-key-not-secret"
DEVELOPMENT_KEY_ID = "dev"
