"""A new order's validation, without I/O: customer data, identity documents, the number plan,
documents and what each business type of the catalogue requires; every violation at once."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderline_catalogue import REQUIRABLE_FIELDS, load_catalogue
from orderline_intake.api.convert import new_order as from_request
from orderline_intake.domain.identity import PROVINCES, check_character
from orderline_intake.domain.order import Customer, Document, NewOrder, Order, Relocation
from orderline_intake.domain.validation import missing_documents, validate_new_order
from orderline_runtime.errors import InvalidArgument

CATALOGUE = load_catalogue()
TODAY = date(2026, 12, 6)
NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
VALID_ID = "11010519491231002X"
HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CJK = re.compile(r"[\u4e00-\u9fff]")


def documents_for(business_type: str) -> tuple[Document, ...]:
    business = CATALOGUE.get(business_type)
    needed = business.required_documents if business else ()
    return tuple(Document(doc, f"{i:02x}" + HASH[2:], 100_000 + i) for i, doc in enumerate(needed))


def new_order(business_type: str = "broadband_install", **overrides: object) -> NewOrder:
    fields: dict[str, object] = {
        "client_request_id": "req-1",
        "business_type": business_type,
        "customer": Customer(
            name="张伟",
            phone="+8613800138000",
            id_number=VALID_ID,
            address="北京市朝阳区建国路88号",
            locale="zh-CN",
        ),
        "device_id": "CPE-0001",
        "plan": "fiber-500m",
        "documents": documents_for(business_type),
    }
    if business_type == "relocation":
        fields["relocation"] = Relocation("北京市朝阳区建国路88号", "北京市海淀区中关村大街1号")
    fields.update(overrides)
    return NewOrder(**fields)  # type: ignore[arg-type]


def violations(new: NewOrder) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as err:
        validate_new_order(new, CATALOGUE, TODAY)
    found = [(v.field, v.description) for v in err.value.violations]
    assert len({f for f, _ in found}) == len(found), "a field named twice"
    return dict(found)


def customer(**changes: object) -> Customer:
    return replace(new_order().customer, **changes)  # type: ignore[arg-type]


# --- the business types ------------------------------------------------------------------------


@pytest.mark.parametrize("business_type", sorted(CATALOGUE.types))
def test_a_complete_order_of_every_business_type_passes(business_type: str) -> None:
    validate_new_order(new_order(business_type), CATALOGUE, TODAY)


def test_an_unknown_business_type_is_named_with_the_known_ones() -> None:
    found = violations(new_order(business_type="teleport", documents=()))
    assert list(found) == ["business_type"]
    assert "broadband_install" in found["business_type"]


@pytest.mark.parametrize("business_type", sorted(CATALOGUE.types))
def test_each_required_field_of_a_type_is_named_when_missing(business_type: str) -> None:
    business = CATALOGUE.get(business_type)
    assert business is not None
    empty = new_order(
        business_type,
        customer=Customer(name="", phone="", id_number="", address="", locale="zh-CN"),
        device_id="",
        plan="",
        relocation=Relocation("", "") if business_type == "relocation" else None,
    )
    found = violations(empty)
    assert set(found) == set(business.required_fields)
    assert set(business.required_fields) <= set(REQUIRABLE_FIELDS)


def test_plan_change_needs_no_address_identity_or_document() -> None:
    bare = customer(id_number="", address="")
    validate_new_order(new_order("plan_change", customer=bare, documents=()), CATALOGUE, TODAY)


def test_missing_required_documents_are_named_together_and_do_not_refuse_the_order() -> None:
    # They may follow: the automatic review sends the order to pending (domain/review.py).
    validate_new_order(new_order("dedicated_line", documents=()), CATALOGUE, TODAY)
    problem = missing_documents((), CATALOGUE.types["dedicated_line"], CATALOGUE)
    assert problem is not None
    for doc in ("identity_copy", "business_licence", "service_contract"):
        assert doc in str(problem)
    assert "营业执照" in str(problem)


def test_ten_bad_fields_come_back_as_ten_violations_in_both_languages() -> None:
    bad = NewOrder(
        client_request_id="bad id!",
        business_type="broadband_install",
        customer=Customer(
            name="x" * 101,
            phone="+8615412345678",
            id_number="110105194912310021",
            address="",
            locale="fr",
            preferred_channel="fax",
        ),
        device_id="cpe 1",
        plan="p" * 65,
        documents=(Document("identity_copy", "not-a-hash", 0),),
    )
    found = violations(bad)
    assert set(found) == {
        "client_request_id",
        "customer.name",
        "customer.phone",
        "customer.identity.resident_id",
        "customer.address",
        "customer.locale",
        "customer.preferred_channel",
        "device_id",
        "plan",
        "documents[0].sha256",
        "documents[0].size_bytes",
    }
    for description in found.values():
        english, chinese = description.split(" | ")
        assert english.isascii() and CJK.search(chinese), description


# --- resident identity numbers -----------------------------------------------------------------

mainland_regions = st.builds(
    lambda p, rest: p + rest,
    st.sampled_from(sorted(PROVINCES - {"81", "82", "83"})),
    st.integers(1, 9999).map(lambda n: f"{n:04d}"),
)
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
sequences = st.integers(1, 999).map(lambda n: f"{n:03d}")


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    first17 = draw(mainland_regions) + draw(birth_dates).strftime("%Y%m%d") + draw(sequences)
    return first17 + check_character(first17)


@given(resident_ids())
def test_every_well_formed_resident_id_passes(resident_id: str) -> None:
    validate_new_order(new_order(customer=customer(id_number=resident_id)), CATALOGUE, TODAY)


@given(resident_ids(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_a_resident_id_with_one_character_changed_fails(
    resident_id: str, position: int, character: str
) -> None:
    if resident_id[position] == character:
        return
    corrupted = resident_id[:position] + character + resident_id[position + 1 :]
    found = violations(new_order(customer=customer(id_number=corrupted)))
    assert list(found) == ["customer.identity.resident_id"]


@pytest.mark.parametrize(
    ("resident_id", "says"),
    [
        ("11010519491231002", "18 characters"),
        ("1101051949123100XX", "18 characters"),
        ("990105194912310025", "region code"),
        ("110000194912310024", "region code"),
        ("110105194902300029", "not a valid date"),
        ("110105203001010012", "in the future"),
        ("110105194912310003", "sequence code 000"),
        ("110105194912310021", "check digit"),
    ],
)
def test_a_bad_resident_id_says_what_is_wrong_without_repeating_it(
    resident_id: str, says: str
) -> None:
    found = violations(new_order(customer=customer(id_number=resident_id)))
    assert says in found["customer.identity.resident_id"]
    assert resident_id[:6] not in found["customer.identity.resident_id"]
    assert resident_id[6:14] not in found["customer.identity.resident_id"]


def test_the_check_digit_follows_gb_11643() -> None:
    # Worked example of the standard: 11010519491231002 -> X.
    assert check_character("11010519491231002") == "X"
    assert check_character("44052418800101001") == "4"


def test_a_residence_permit_of_a_hong_kong_resident_passes() -> None:
    first17 = "810000199001010015"[:17]
    permit = first17 + check_character(first17)
    validate_new_order(new_order(customer=customer(id_number=permit)), CATALOGUE, TODAY)


def test_a_legacy_id_number_is_named_by_its_own_field() -> None:
    found = violations(
        new_order(
            customer=customer(id_number="110105194912310021"), id_number_path="customer.id_number"
        )
    )
    assert list(found) == ["customer.id_number"]


# --- passports ---------------------------------------------------------------------------------


def test_a_passport_stands_in_for_the_resident_id() -> None:
    passport = customer(id_number="E12345678", id_type="passport", passport_country="GBR")
    validate_new_order(new_order(customer=passport), CATALOGUE, TODAY)


def test_a_bad_passport_names_its_number_and_its_country() -> None:
    passport = customer(id_number="E1", id_type="passport", passport_country="UK")
    found = violations(new_order(customer=passport))
    assert set(found) == {
        "customer.identity.passport.number",
        "customer.identity.passport.issuing_country",
    }


# --- phone numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+8613800138000",
        "+8614512345678",
        "+8616612345678",
        "+8617400123456",
        "+8618912345678",
        "+8619912345678",
        "+861012345678",  # Beijing fixed line
        "+862161234567",  # Shanghai fixed line
        "+447911123456",  # a UK mobile: E.164 is enough
    ],
)
def test_numbers_of_the_plan_pass(phone: str) -> None:
    validate_new_order(new_order(customer=customer(phone=phone)), CATALOGUE, TODAY)


@pytest.mark.parametrize(
    ("phone", "says"),
    [
        ("13800138000", "E.164"),
        ("+86 138 0013 8000", "E.164"),
        ("+86138001380001", "11 digits"),
        ("+8613800138", "11 digits"),
        ("+8615412345678", "154 is not an allocated"),
        ("+8614012345678", "140 is not an allocated"),
        ("+8619412345678", "194 is not an allocated"),
        ("+8617412345678", "174 is not an allocated"),
        ("+861112345678", "not a mainland number"),
    ],
)
def test_numbers_outside_the_plan_are_refused(phone: str, says: str) -> None:
    found = violations(new_order(customer=customer(phone=phone)))
    assert says in found["customer.phone"]


# --- contact channel ---------------------------------------------------------------------------


def test_sms_to_a_fixed_line_is_refused() -> None:
    fixed = customer(phone="+861012345678", preferred_channel="sms")
    assert list(violations(new_order(customer=fixed))) == ["customer.preferred_channel"]


def test_a_customer_who_names_no_channel_is_texted_on_a_mobile_and_called_otherwise() -> None:
    mobile = Order.record("o-1", new_order(), "clerk-1", NOW)
    assert mobile.customer.preferred_channel == "sms"
    fixed = Order.record("o-2", new_order(customer=customer(phone="+861012345678")), "c", NOW)
    assert fixed.customer.preferred_channel == "phone"
    chosen = Order.record("o-3", new_order(customer=customer(preferred_channel="phone")), "c", NOW)
    assert chosen.customer.preferred_channel == "phone"


# --- relocation --------------------------------------------------------------------------------


def test_a_relocation_needs_the_old_and_the_new_address() -> None:
    found = violations(new_order("relocation", relocation=None))
    assert set(found) == {"relocation.old_address", "relocation.new_address"}


def test_a_relocation_to_the_same_address_is_refused() -> None:
    same = Relocation("北京市朝阳区建国路88号", " 北京市朝阳区建国路 88号")
    assert list(violations(new_order("relocation", relocation=same))) == ["relocation.new_address"]


def test_relocation_addresses_on_another_type_are_refused() -> None:
    moved = Relocation("北京市朝阳区建国路88号", "北京市海淀区中关村大街1号")
    assert list(violations(new_order(relocation=moved))) == ["relocation"]


# --- documents ---------------------------------------------------------------------------------


def test_each_bad_document_is_named_by_its_index() -> None:
    docs = (
        Document("identity_copy", HASH, 1000),
        Document("selfie", HASH.upper(), 1000),
        Document("identity_copy", HASH, 1000),
        Document("business_licence", HASH[:-1] + "g", 21 * 1024 * 1024),
    )
    found = violations(new_order(documents=docs))
    assert set(found) == {
        "documents[1].type",
        "documents[1].sha256",
        "documents[2].sha256",
        "documents[3].sha256",
        "documents[3].size_bytes",
    }
    assert "documents[0]" in found["documents[2].sha256"]


def test_too_many_documents_are_refused() -> None:
    docs = tuple(Document("identity_copy", f"{i:064x}", 10) for i in range(21))
    assert list(violations(new_order(documents=docs))) == ["documents"]


# --- through the wire conversion -----------------------------------------------------------------


def test_the_demo_orders_are_valid() -> None:
    from orderline_cli.demo import CUSTOMERS, demo_request

    for i in range(len(CUSTOMERS) * 2):
        validate_new_order(from_request(demo_request(i, "CPE-0001")), CATALOGUE, TODAY)


# --- what reaches the caller ---------------------------------------------------------------------


def _worst_cases() -> list[NewOrder]:
    nobody = Customer(name="", phone="", id_number="", address="", locale="zh-CN")
    cases = [
        new_order(business_type="teleport", documents=()),
        new_order(business_type="", documents=()),
        new_order(documents=(Document("x" * 64, "y", 0), Document("identity_copy", HASH, 1))),
        new_order(
            documents=(Document("identity_copy", HASH, 1), Document("identity_copy", HASH, 1))
        ),
        new_order(customer=customer(phone="+8615412345678", locale="fr", preferred_channel="fax")),
        new_order(customer=customer(phone="+861012345678", preferred_channel="sms")),
        new_order(relocation=Relocation("a", "b")),
    ]
    for business in CATALOGUE:
        cases.append(new_order(business.key, customer=nobody, documents=(), relocation=None))
        cases.append(
            new_order(business.key, plan="p" * 65, device_id="cpe 1", client_request_id="?")
        )
    for bad_id in ("1", "990105194912310025", "110105194902300029", "110105203001010012"):
        cases.append(new_order(customer=customer(id_number=bad_id)))
    passport = customer(id_number="E1", id_type="passport", passport_country="UK")
    cases.append(new_order(customer=passport))
    return cases


def test_every_description_fits_the_error_details_whole_in_both_languages() -> None:
    from orderline_runtime.rpc.status import MAX_TEXT_BYTES

    for case in _worst_cases():
        for field, description in violations(case).items():
            assert len(description.encode()) <= MAX_TEXT_BYTES, (field, description)
            english, chinese = description.split(" | ")
            assert english.isascii() and CJK.search(chinese), (field, description)
