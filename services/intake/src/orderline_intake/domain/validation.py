# Texts for people use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""What a new order must satisfy before it is recorded: every field well formed, and the fields
its business type requires present (required documents may follow: see missing_documents).
Every violation is collected, so one refusal names every bad field, by its path in
CreateOrderRequest, in English and zh-CN."""

from __future__ import annotations

import re
from datetime import date

from orderline_catalogue import BusinessType, Catalogue
from orderline_intake.domain.identity import (
    issuing_country_problem,
    passport_number_problem,
    resident_id_problem,
)
from orderline_intake.domain.order import ContactChannel, Document, NewOrder
from orderline_intake.domain.phone import CHINA, is_mainland_mobile, phone_problem
from orderline_intake.domain.text import Says, says
from orderline_runtime.errors import Violations

LOCALES = ("zh-CN", "en")
MAX_NAME = 100
MAX_ADDRESS = 300
MAX_DOCUMENTS = 20
# A scan or photo of a document; anything larger is not a document a clerk attaches.
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_DEVICE_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Found:
    """Violations, at most one per field: the first problem found with a field is its answer."""

    def __init__(self) -> None:
        self.violations = Violations()
        self.fields: set[str] = set()

    def add(self, field_path: str, text: Says) -> None:
        if field_path not in self.fields:
            self.fields.add(field_path)
            self.violations.add(field_path, str(text))


def validate_new_order(new: NewOrder, catalogue: Catalogue, today: date) -> None:
    """Raises InvalidArgument naming every missing or malformed field at once.

    `today` is the operator's date, for birth dates that cannot lie in the future.
    """
    found = _Found()
    if not new.client_request_id:
        found.add("client_request_id", says("required: a key that makes retries safe", "必填"))
    elif not _REQUEST_ID.match(new.client_request_id):
        found.add(
            "client_request_id",
            says(
                "1-64 characters of letters, digits and . _ : -", "应为1至64位字母、数字或. _ : -"
            ),
        )
    business = catalogue.get(new.business_type) if new.business_type else None
    if business is None:
        known = ", ".join(sorted(catalogue.types))
        if not new.business_type:
            found.add("business_type", says(f"required: one of {known}", "必填业务类型"))
        else:
            found.add("business_type", says(f"unknown; one of {known}", "未知业务类型"))
    _required(found, new, business)
    _customer(found, new, today)
    _relocation(found, new, business)
    _documents(found, new, catalogue)
    if new.device_id and not _DEVICE_ID.match(new.device_id):
        found.add(
            "device_id",
            says(
                "upper-case letters, digits and '-', 3-64 characters, e.g. CPE-0001",
                "应为3至64位大写字母、数字或-，如CPE-0001",
            ),
        )
    if new.plan and len(new.plan) > 64:
        found.add("plan", says("at most 64 characters", "最多64个字符"))
    if len(new.device_model) > 64 or not new.device_model.isprintable():
        found.add("device_model", says("at most 64 printable characters", "最多64个可打印字符"))
    found.violations.raise_if_any()


def _required(found: _Found, new: NewOrder, business: BusinessType | None) -> None:
    c = new.customer
    relocation = new.relocation
    present = {
        "customer.name": bool(c.name.strip()),
        "customer.phone": bool(c.phone.strip()),
        "customer.identity": bool(c.id_number.strip()) or c.has_passport,
        "customer.address": bool(c.address.strip()),
        "relocation.old_address": bool(relocation and relocation.old_address.strip()),
        "relocation.new_address": bool(relocation and relocation.new_address.strip()),
        "device_id": bool(new.device_id.strip()),
        "plan": bool(new.plan.strip()),
    }
    # Without a known type only what every order needs is checked: the type itself is wrong.
    required = business.required_fields if business else ("customer.name", "customer.phone")
    for path in required:
        if present[path]:
            continue
        if business is None:
            found.add(path, says("required for every order", "必填"))
        elif path == "customer.identity":
            found.add(
                path,
                says(
                    f"required for {business.names['en']}: resident identity number or passport",
                    f"{business.names['zh-CN']}业务必填：居民身份证号码或护照",
                ),
            )
        else:
            found.add(
                path,
                says(f"required for {business.names['en']}", f"{business.names['zh-CN']}业务必填"),
            )


def _customer(found: _Found, new: NewOrder, today: date) -> None:
    c = new.customer
    if len(c.name) > MAX_NAME:
        found.add("customer.name", says(f"at most {MAX_NAME} characters", f"最多{MAX_NAME}个字符"))
    if c.phone and (problem := phone_problem(c.phone)):
        found.add("customer.phone", problem)
    if c.has_passport:
        if problem := passport_number_problem(c.id_number):
            found.add("customer.identity.passport.number", problem)
        if problem := issuing_country_problem(c.passport_country):
            found.add("customer.identity.passport.issuing_country", problem)
    elif c.id_number and (problem := resident_id_problem(c.id_number, today)):
        found.add(new.id_number_path, problem)
    if len(c.address) > MAX_ADDRESS:
        found.add(
            "customer.address",
            says(f"at most {MAX_ADDRESS} characters", f"最多{MAX_ADDRESS}个字符"),
        )
    if c.locale and c.locale not in LOCALES:
        found.add(
            "customer.locale",
            says(f"one of {', '.join(LOCALES)}", f"应为{'或'.join(LOCALES)}"),
        )
    channels = {ch.value for ch in ContactChannel}
    if c.preferred_channel and c.preferred_channel not in channels:
        found.add(
            "customer.preferred_channel",
            says("SMS or phone", "应为短信或电话"),
        )
    elif (
        c.preferred_channel == ContactChannel.SMS
        and c.phone.startswith(CHINA)
        and phone_problem(c.phone) is None
        and not is_mainland_mobile(c.phone)
    ):
        found.add(
            "customer.preferred_channel",
            says("SMS needs a mobile number; this one is a fixed line", "固定电话无法接收短信"),
        )


def _relocation(found: _Found, new: NewOrder, business: BusinessType | None) -> None:
    relocation = new.relocation
    if relocation is None:
        return
    if business is not None and not business.requires("relocation.new_address"):
        found.add(
            "relocation",
            says(
                f"only for a relocation, not for {business.names['en']}",
                f"仅移机业务填写，{business.names['zh-CN']}业务不适用",
            ),
        )
        return
    for path, address in (
        ("relocation.old_address", relocation.old_address),
        ("relocation.new_address", relocation.new_address),
    ):
        if len(address) > MAX_ADDRESS:
            found.add(path, says(f"at most {MAX_ADDRESS} characters", f"最多{MAX_ADDRESS}个字符"))
    if relocation.old_address.strip() and _same_address(
        relocation.old_address, relocation.new_address
    ):
        found.add(
            "relocation.new_address",
            says("the same as the old address", "新地址与原地址相同"),
        )


def _documents(found: _Found, new: NewOrder, catalogue: Catalogue) -> None:
    if len(new.documents) > MAX_DOCUMENTS:
        found.add(
            "documents", says(f"at most {MAX_DOCUMENTS} documents", f"最多{MAX_DOCUMENTS}份材料")
        )
        return
    seen: dict[str, int] = {}
    for i, doc in enumerate(new.documents):
        path = f"documents[{i}]"
        if not doc.type:
            found.add(f"{path}.type", says("required", "必填"))
        elif doc.type not in catalogue.document_types:
            known = ", ".join(sorted(catalogue.document_types))
            found.add(f"{path}.type", says(f"unknown; one of {known}", "未知材料类型"))
        if not _SHA256.match(doc.sha256):
            found.add(
                f"{path}.sha256",
                says(
                    "SHA-256 of the content: 64 hexadecimal digits",
                    "应为内容的SHA-256：64位十六进制",
                ),
            )
        elif doc.sha256 in seen:
            found.add(
                f"{path}.sha256",
                says(
                    f"the same content as documents[{seen[doc.sha256]}]",
                    f"与documents[{seen[doc.sha256]}]内容相同",
                ),
            )
        else:
            seen[doc.sha256] = i
        if not 0 < doc.size_bytes <= MAX_DOCUMENT_BYTES:
            found.add(
                f"{path}.size_bytes",
                says(
                    f"between 1 byte and {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB",
                    f"应在1字节至{MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB之间",
                ),
            )


def missing_documents(
    documents: tuple[Document, ...], business: BusinessType, catalogue: Catalogue
) -> Says | None:
    """The documents the type requires that are not attached, or None. Not a refusal: an
    order without them is recorded and waits in `pending` for them (domain/review.py)."""
    attached = {doc.type for doc in documents}
    missing = [d for d in business.required_documents if d not in attached]
    if not missing:
        return None
    zh_missing = "、".join(catalogue.document_types[d].names["zh-CN"] for d in missing)
    return says(f"missing: {', '.join(missing)}", f"缺少：{zh_missing}")


def _same_address(a: str, b: str) -> bool:
    return "".join(a.split()).casefold() == "".join(b.split()).casefold()
