"""TMF641 state names from the OrderState enum; labels in en and zh-CN for managers."""

from __future__ import annotations

import pytest

from orderline.order.v1 import order_pb2
from orderline_catalogue import load_catalogue
from orderline_reporting.domain import labels, states


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (order_pb2.ORDER_STATE_ACKNOWLEDGED, "acknowledged"),
        (order_pb2.ORDER_STATE_IN_PROGRESS, "inProgress"),
        (order_pb2.ORDER_STATE_COMPLETED, "completed"),
        (order_pb2.ORDER_STATE_REJECTED, "rejected"),
        (order_pb2.ORDER_STATE_PENDING, "pending"),
        (order_pb2.ORDER_STATE_HELD, "held"),
        (order_pb2.ORDER_STATE_FAILED, "failed"),
        (order_pb2.ORDER_STATE_ASSESSING_CANCELLATION, "assessingCancellation"),
        (order_pb2.ORDER_STATE_PENDING_CANCELLATION, "pendingCancellation"),
        (order_pb2.ORDER_STATE_CANCELLED, "cancelled"),
    ],
)
def test_order_state_enum_maps_to_its_tmf641_name(value: int, name: str) -> None:
    assert states.tmf_state(value) == name


def test_every_enum_state_but_unspecified_has_a_tmf641_name() -> None:
    named = {v for v in order_pb2.OrderState.values() if v != order_pb2.ORDER_STATE_UNSPECIFIED}
    assert {states.tmf_state(v) for v in named} == set(states.ORDER_STATES)


@pytest.mark.parametrize("value", [order_pb2.ORDER_STATE_UNSPECIFIED, 99])
def test_unspecified_or_unknown_state_is_refused(value: int) -> None:
    with pytest.raises(states.UnknownState):
        states.tmf_state(value)


@pytest.mark.parametrize("state", states.ORDER_STATES)
def test_every_state_has_a_label_in_english_and_chinese(state: str) -> None:
    names = labels.STATE_LABELS[state]
    assert set(names) == set(labels.LOCALES)
    assert all(names[locale].strip() for locale in labels.LOCALES)


def test_state_labels_cover_exactly_the_tmf641_states() -> None:
    assert set(labels.STATE_LABELS) == set(states.ORDER_STATES)


@pytest.mark.parametrize("business_type", sorted(labels.BUSINESS_TYPE_LABELS))
def test_every_business_type_has_a_label_in_english_and_chinese(business_type: str) -> None:
    names = labels.BUSINESS_TYPE_LABELS[business_type]
    assert set(names) == set(labels.LOCALES)
    assert all(names[locale].strip() for locale in labels.LOCALES)


def test_labels_read_in_the_requested_language() -> None:
    assert labels.state_label("completed", "zh-CN") == "已完成"
    assert labels.state_label("completed", "en") == "Completed"
    assert labels.business_type_label("broadband_install", "zh-CN") == "宽带新装"
    assert labels.business_type_label("broadband_install") == "Broadband installation"


def test_unknown_locale_falls_back_to_english_and_unknown_key_shows_itself() -> None:
    assert labels.state_label("held", "fr") == "Held"
    assert labels.business_type_label("satellite_uplink", "zh-CN") == "satellite_uplink"


def test_business_type_labels_are_the_catalogue_s_names() -> None:
    catalogue = load_catalogue()
    assert set(labels.BUSINESS_TYPE_LABELS) == set(catalogue.types)
    for business in catalogue:
        for locale in labels.LOCALES:
            assert labels.business_type_label(business.key, locale) == business.names[locale]
