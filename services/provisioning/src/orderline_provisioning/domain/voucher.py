# Customer texts use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""The activation voucher (业务开通凭证) handed to the customer when the service is active: its
id, its texts, and the signed attestation that anyone holding the public key can verify
(domain/attestation.py)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from orderline_provisioning.domain.attestation import (
    ActivationFacts,
    TestSummary,
    mask_name,
    sign_statement,
    statement,
)
from orderline_provisioning.domain.texts import EN, ZH_CN, business_label, local_time
from orderline_runtime.pii import mask_phone

VOUCHER_ID = re.compile(r"^AV-[A-Z2-7]{12}$")
ENTROPY_BYTES = 8  # 64 bits, of which the 12 base32 characters keep 60


def voucher_id_from(entropy: bytes) -> str:
    """`AV-` + 12 characters of RFC 4648 base32 (A-Z, 2-7) of the given random bytes."""
    if len(entropy) < ENTROPY_BYTES:
        raise ValueError(f"a voucher id needs {ENTROPY_BYTES} random bytes")
    return "AV-" + base64.b32encode(entropy[:ENTROPY_BYTES]).decode("ascii")[:12]


def is_voucher_id(text: str) -> bool:
    return bool(VOUCHER_ID.match(text))


def voucher_texts(
    voucher_id: str, business_type: str, plan: str, device_id: str, issued_at: datetime
) -> dict[str, str]:
    """The voucher's wording by locale."""
    when = local_time(issued_at)
    zh_plan = f"（套餐：{plan}）" if plan else ""
    en_plan = f" (plan {plan})" if plan else ""
    return {
        ZH_CN: (
            f"业务开通凭证 {voucher_id}：您的{business_label(business_type, ZH_CN)}业务"
            f"{zh_plan}已于 {when}（北京时间）在设备 {device_id} 上开通。请妥善保存本凭证。"
        ),
        EN: (
            f"Service activation voucher {voucher_id}: your "
            f"{business_label(business_type, EN)} service{en_plan} was activated on device "
            f"{device_id} at {when} (UTC+8). Please keep this voucher."
        ),
    }


@dataclass(frozen=True)
class Voucher:
    id: str
    job_id: str
    order_id: str
    device_id: str
    business_type: str
    issued_at: datetime
    texts: Mapping[str, str] = field(default_factory=dict)
    # The DSSE envelope (canonical JSON bytes) and the id of the key that signed it.
    envelope: bytes = b""
    key_id: str = ""


class VoucherSigner(Protocol):
    """The key vouchers are signed with (app/voucher_keys.py)."""

    @property
    def keyid(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


def issue_voucher(
    *,
    entropy: bytes,
    job_id: str,
    order_id: str,
    device_id: str,
    business_type: str,
    plan: str,
    issued_at: datetime,
    config_version: int | None,
    customer_name: str,
    customer_phone: str,
    tests: Sequence[TestSummary],
    signer: VoucherSigner,
) -> Voucher:
    """A new voucher, signed. The customer's name and phone are masked here, whatever the
    caller passes: a voucher is shown and forwarded, it never carries them in clear."""
    voucher_id = voucher_id_from(entropy)
    texts = voucher_texts(voucher_id, business_type, plan, device_id, issued_at)
    facts = ActivationFacts(
        voucher_id=voucher_id,
        job_id=job_id,
        order_id=order_id,
        business_type=business_type,
        plan=plan,
        device_id=device_id,
        config_version=config_version,
        customer_name=mask_name(customer_name),
        customer_phone=mask_phone(customer_phone) if customer_phone else "",
        tests=tests,
        activated_at=issued_at,
        texts=texts,
    )
    keyid = signer.keyid
    envelope = sign_statement(statement(facts), keyid, signer.sign)
    return Voucher(
        id=voucher_id,
        job_id=job_id,
        order_id=order_id,
        device_id=device_id,
        business_type=business_type,
        issued_at=issued_at,
        texts=texts,
        envelope=envelope.to_json(),
        key_id=keyid,
    )
