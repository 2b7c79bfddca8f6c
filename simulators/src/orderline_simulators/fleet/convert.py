"""Mapping between the fleet's domain values and the generated protobuf messages."""

from __future__ import annotations

from datetime import UTC

from orderline.agent.v1 import agent_pb2
from orderline.device.v1 import device_pb2
from orderline_simulators.common.errors import InvalidArgument
from orderline_simulators.fleet.domain import (
    Counters,
    Device,
    FactoryResetResult,
    HealthCategory,
    RebootResult,
    TestKind,
    access_node_of,
)
from orderline_simulators.fleet.telemetry import TelemetrySample

_CATEGORY_PREFIX = "HEALTH_CATEGORY_"
_KIND_PREFIX = "TEST_KIND_"


def category_to_proto(category: HealthCategory) -> device_pb2.HealthCategory.ValueType:
    return device_pb2.HealthCategory.Value(_CATEGORY_PREFIX + category.name)


def category_from_proto(
    value: device_pb2.HealthCategory.ValueType, *, field: str = "category"
) -> HealthCategory | None:
    """None for UNSPECIFIED; INVALID_ARGUMENT for a number this build does not know."""
    if value == device_pb2.HEALTH_CATEGORY_UNSPECIFIED:
        return None
    try:
        return HealthCategory[device_pb2.HealthCategory.Name(value).removeprefix(_CATEGORY_PREFIX)]
    except (ValueError, KeyError):
        raise InvalidArgument(field, f"unknown health category {value}") from None


def kind_from_proto(value: agent_pb2.TestKind.ValueType, *, field: str = "kind") -> TestKind:
    if value == agent_pb2.TEST_KIND_UNSPECIFIED:
        raise InvalidArgument(field, "required")
    try:
        return TestKind[agent_pb2.TestKind.Name(value).removeprefix(_KIND_PREFIX)]
    except (ValueError, KeyError):
        raise InvalidArgument(field, f"unknown test kind {value}") from None


def device_info(device: Device) -> agent_pb2.DeviceInfo:
    return agent_pb2.DeviceInfo(
        device_id=device.device_id,
        model=device.model,
        firmware=device.firmware,
        config_version=device.config_version,
        faults=[category_to_proto(c) for c in device.sorted_faults()],
        defects=sorted(device.defects),
        service_active=device.service_active,
        access_node_id=device.access_node,
        reboots=device.reboots,
        factory_resets=device.factory_resets,
    )


def counters(value: Counters) -> agent_pb2.GetCountersResponse:
    return agent_pb2.GetCountersResponse(
        applies_by_key=dict(value.applies_by_key),
        config_applies=value.config_applies,
        tests_run=value.tests_run,
        reboots=value.reboots,
        factory_resets=value.factory_resets,
    )


def factory_reset(result: FactoryResetResult) -> agent_pb2.FactoryResetResponse:
    return agent_pb2.FactoryResetResponse(
        replayed=result.replayed,
        factory_resets=result.factory_resets,
        config_version=result.config_version,
        previous_version=result.previous_version,
    )


def reboot(result: RebootResult) -> agent_pb2.RebootResponse:
    return agent_pb2.RebootResponse(
        replayed=result.replayed,
        reboots=result.reboots,
        cleared=[category_to_proto(c) for c in result.cleared],
        remaining=[category_to_proto(c) for c in result.remaining],
    )


def sample_to_proto(sample: TelemetrySample) -> device_pb2.TelemetrySample:
    message = device_pb2.TelemetrySample(
        device_id=sample.device_id,
        noise_db=sample.noise_db,
        vibration_mm_s=sample.vibration_mm_s,
        display_ok=sample.display_ok,
        key_latency_ms=sample.key_latency_ms,
        line_error_rate=sample.line_error_rate,
        line_up=sample.line_up,
        cpu_pct=sample.cpu_pct,
        memory_pct=sample.memory_pct,
        disk_pct=sample.disk_pct,
        temperature_c=sample.temperature_c,
        safety_ok=sample.safety_ok,
        access_node_id=access_node_of(sample.device_id),
        device_model=sample.model,
    )
    message.observed_at.FromDatetime(sample.observed_at)
    return message


def sample_from_proto(message: device_pb2.TelemetrySample) -> TelemetrySample:
    return TelemetrySample(
        device_id=message.device_id,
        observed_at=message.observed_at.ToDatetime(tzinfo=UTC),
        noise_db=message.noise_db,
        vibration_mm_s=message.vibration_mm_s,
        display_ok=message.display_ok,
        key_latency_ms=message.key_latency_ms,
        line_error_rate=message.line_error_rate,
        line_up=message.line_up,
        cpu_pct=message.cpu_pct,
        memory_pct=message.memory_pct,
        disk_pct=message.disk_pct,
        temperature_c=message.temperature_c,
        safety_ok=message.safety_ok,
        model=message.device_model,
    )
