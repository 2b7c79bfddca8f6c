"""The fleet's pure domain: idempotency ledger, config versions, fault → test mapping."""

from __future__ import annotations

import pytest

from orderline_simulators.common.errors import FailedPrecondition, InvalidArgument, NotFound
from orderline_simulators.fleet import domain
from orderline_simulators.fleet.domain import Fleet, HealthCategory

Kind = domain.TestKind


def test_fleet_ids_are_numbered_from_one() -> None:
    fleet = Fleet.create(12)
    ids = [d.device_id for d in fleet.devices()]
    assert ids[0] == "CPE-0001"
    assert ids[-1] == "CPE-0012"
    assert len(set(ids)) == 12


def test_unknown_and_missing_device() -> None:
    fleet = Fleet.create(3)
    with pytest.raises(NotFound):
        fleet.get("CPE-0004")
    with pytest.raises(InvalidArgument) as exc:
        fleet.get("")
    assert exc.value.field == "device_id"


def test_apply_is_idempotent_on_key() -> None:
    device = Fleet.create(1).get("CPE-0001")
    assert device.config_version == 1
    first = device.apply_config("k1", {"vlan": "100"})
    assert (first.config_version, first.replayed) == (2, False)
    again = device.apply_config("k1", {"vlan": "999"})
    assert (again.config_version, again.replayed) == (2, True)
    assert device.settings == {"vlan": "100"}  # the repeat changed nothing
    counters = device.counters()
    assert counters.applies_by_key == {"k1": 1}
    assert counters.config_applies == 1


def test_each_new_key_applies_a_new_version_over_the_last() -> None:
    device = Fleet.create(1).get("CPE-0001")
    device.apply_config("a", {"vlan": "100", "qos": "gold"})
    result = device.apply_config("b", {"vlan": "200"})
    assert result.config_version == 3
    assert device.settings == {"vlan": "200", "qos": "gold"}
    assert device.counters().applies_by_key == {"a": 1, "b": 1}


def test_rollback_to_previous_and_to_named_version() -> None:
    device = Fleet.create(1).get("CPE-0001")
    device.apply_config("a", {"vlan": "100"})
    device.apply_config("b", {"vlan": "200"})
    back = device.rollback_config("r1", 0)
    assert (back.config_version, back.replayed) == (2, False)
    assert device.settings == {"vlan": "100"}
    assert device.rollback_config("r1", 0) == domain.ConfigResult(2, True)
    assert device.config_version == 2  # the repeat did not roll back once more
    assert device.rollback_config("r2", 1).config_version == 1
    assert device.settings == {}
    # Versions are never reused after a rollback.
    assert device.apply_config("c", {"vlan": "300"}).config_version == 4
    assert device.counters().config_applies == 5


def test_rollback_errors() -> None:
    device = Fleet.create(1).get("CPE-0001")
    with pytest.raises(FailedPrecondition) as nothing:
        device.rollback_config("r", 0)
    assert nothing.value.reason_code == "NOTHING_TO_ROLL_BACK"
    with pytest.raises(FailedPrecondition) as unknown:
        device.rollback_config("r", 7)
    assert unknown.value.reason_code == "UNKNOWN_CONFIG_VERSION"
    with pytest.raises(InvalidArgument):
        device.rollback_config("r", -1)
    # A refused call records nothing: the key can still be used.
    device.apply_config("a", {})
    assert device.rollback_config("r", 0) == domain.ConfigResult(1, False)


def test_key_required_and_not_reusable_across_operations() -> None:
    device = Fleet.create(1).get("CPE-0001")
    with pytest.raises(InvalidArgument) as exc:
        device.apply_config("", {"a": "b"})
    assert exc.value.field == "idempotency_key"
    with pytest.raises(InvalidArgument):
        device.run_test(Kind.FUNCTIONAL, "")
    device.apply_config("k", {"a": "b"})
    with pytest.raises(FailedPrecondition) as reused:
        device.rollback_config("k", 1)
    assert reused.value.reason_code == "IDEMPOTENCY_KEY_REUSED"


def test_mapping_covers_every_category_and_test_kind() -> None:
    assert set(domain.FAILED_TESTS) == set(HealthCategory)
    assert all(domain.FAILED_TESTS[c] for c in HealthCategory)
    for kind in Kind:
        assert domain.categories_failing(kind), kind


@pytest.mark.parametrize(
    ("category", "failing"),
    [
        (HealthCategory.MECHANICAL, {Kind.ENVIRONMENTAL}),
        (HealthCategory.DISPLAY, {Kind.USER_INTERFACE}),
        (HealthCategory.INPUT, {Kind.USER_INTERFACE}),
        (HealthCategory.LINE, {Kind.PERFORMANCE, Kind.FUNCTIONAL}),
        (HealthCategory.RESOURCES, {Kind.PERFORMANCE, Kind.SECURITY}),
        (HealthCategory.THERMAL, {Kind.ENVIRONMENTAL}),
        (HealthCategory.SAFETY, {Kind.SECURITY}),
    ],
)
def test_a_fault_fails_exactly_its_related_tests(
    category: HealthCategory, failing: set[domain.TestKind]
) -> None:
    device = Fleet.create(1).get("CPE-0001")
    assert all(device.run_test(kind, "t").passed for kind in Kind)
    device.inject_fault(category)
    outcomes = {kind: device.run_test(kind, "t") for kind in Kind}
    assert {kind for kind, o in outcomes.items() if not o.passed} == failing
    for kind in failing:
        assert outcomes[kind].failing == (category,)
        assert f"{category.value} fault" in outcomes[kind].detail
    device.clear_fault(category)
    assert all(device.run_test(kind, "t").passed for kind in Kind)
    assert device.counters().tests_run == 3 * len(Kind)


def test_clear_all_faults() -> None:
    device = Fleet.create(1).get("CPE-0001")
    device.inject_fault(HealthCategory.THERMAL)
    device.inject_fault(HealthCategory.SAFETY)
    device.inject_fault(HealthCategory.THERMAL)
    assert device.sorted_faults() == [HealthCategory.THERMAL, HealthCategory.SAFETY]
    device.clear_fault(None)
    assert device.faults == set()


def test_fault_specs_parse_and_reject() -> None:
    specs = domain.parse_fault_specs(" CPE-0007:thermal, cpe-0013:LINE ,")
    assert specs == (
        domain.FaultSpec("CPE-0007", HealthCategory.THERMAL),
        domain.FaultSpec("CPE-0013", HealthCategory.LINE),
    )
    assert domain.parse_fault_specs("") == ()
    with pytest.raises(ValueError, match="unknown health category"):
        domain.parse_fault_specs("CPE-0001:smoke")
    with pytest.raises(ValueError, match="DEVICE_ID:CATEGORY"):
        domain.parse_fault_specs("CPE-0001")


def test_fleet_counters_are_prefixed_by_device() -> None:
    fleet = Fleet.create(2)
    fleet.get("CPE-0001").apply_config("k", {})
    fleet.get("CPE-0002").apply_config("k", {})
    counters = fleet.counters()
    assert counters.applies_by_key == {"CPE-0001/k": 1, "CPE-0002/k": 1}
    assert counters.config_applies == 2
