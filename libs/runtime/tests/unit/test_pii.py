"""Personal data is masked before it reaches logs, events or spans."""

from __future__ import annotations

import pytest

from orderline_runtime.pii import mask_address, mask_id_number, mask_phone


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+8613800138000", "+86138****8000"),
        ("13800138000", "138****8000"),
        ("12345678", "******78"),
        ("12", "12"),
        ("", ""),
    ],
)
def test_phone_keeps_prefix_and_last_four_digits(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked
    assert len(mask_phone(phone)) == len(phone)


def test_phone_numbers_stay_distinguishable_but_not_callable() -> None:
    a, b = mask_phone("13800138000"), mask_phone("13800139999")
    assert a != b
    assert "0013" not in a


@pytest.mark.parametrize(
    ("id_number", "masked"),
    [
        ("11010519491231002X", "110**************X"),
        ("1234", "****"),
        ("12345", "123*5"),
        ("", ""),
    ],
)
def test_id_number_keeps_region_prefix_and_check_digit_only(id_number: str, masked: str) -> None:
    assert mask_id_number(id_number) == masked


def test_id_number_hides_the_birth_date() -> None:
    assert "19491231" not in mask_id_number("11010519491231002X")


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("北京市海淀区中关村大街27号1101室", "北京市海淀区***"),
        ("12 Baker Street, London", "12 Bak***"),
        ("abc", "a***"),
        ("", ""),
    ],
)
def test_address_keeps_only_city_and_district(address: str, masked: str) -> None:
    assert mask_address(address) == masked


def test_address_never_shows_street_number() -> None:
    assert "27号" not in mask_address("北京市海淀区中关村大街27号1101室")
    assert "Street" not in mask_address("12 Baker Street, London")
