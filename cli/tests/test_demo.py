"""Demo orders name a business type their device's model is allowed for, so that they pass
provisioning's pre-operation checklist on the fleet simulator."""

from __future__ import annotations

from orderline_catalogue import load_catalogue
from orderline_cli.demo import FLEET_MODELS, business_type_for, demo_request, fleet_model
from orderline_simulators.fleet.domain import MODELS, Fleet


def test_the_demo_knows_the_fleets_models_in_the_fleets_order() -> None:
    assert tuple(m.model for m in MODELS) == FLEET_MODELS
    fleet = Fleet.create(8)
    assert [fleet_model(d.device_id) for d in fleet.devices()] == [d.model for d in fleet.devices()]
    assert fleet_model("CPE-0000") is None and fleet_model("ROUTER-1") is None


def test_every_demo_order_passes_the_device_checks_of_its_business_type() -> None:
    catalogue = load_catalogue()
    fleet = Fleet.create(100)
    for i, device in enumerate(fleet.devices()):
        business_type, _ = business_type_for(i, device.device_id)
        allowed = catalogue.get(business_type).device_model(device.model)  # type: ignore[union-attr]
        assert allowed is not None and allowed.admits(device.firmware), (i, device)
        assert demo_request(i, device.device_id).business_type == business_type
    # Every business type of the demo's mix still comes up.
    assert {business_type_for(i, f"CPE-{i + 1:04d}")[0] for i in range(20)} == {
        "broadband_install",
        "iptv",
        "fixed_line",
        "plan_change",
        "dedicated_line",
    }
