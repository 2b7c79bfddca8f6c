"""RunTests on the fleet as a real process over real gRPC: several tests in one call, in the
order given, each exactly what RunTest with its kind and key answers; a refused call runs none."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")

FUNCTIONAL = agent_pb2.TEST_KIND_FUNCTIONAL
PERFORMANCE = agent_pb2.TEST_KIND_PERFORMANCE
SECURITY = agent_pb2.TEST_KIND_SECURITY
ENVIRONMENTAL = agent_pb2.TEST_KIND_ENVIRONMENTAL
USER_INTERFACE = agent_pb2.TEST_KIND_USER_INTERFACE

# What each kind's result measures (fleet/measure.py): tells the results apart.
MEASURES = {
    FUNCTIONAL: "service_up",
    PERFORMANCE: "throughput_mbps",
    SECURITY: "firmware_signature_ok",
    ENVIRONMENTAL: "temperature_load_c",
    USER_INTERFACE: "key_latency_ms",
}


def stub(channel: grpc.aio.Channel) -> Any:
    return agent_pb2_grpc.DeviceAgentServiceStub(channel)


def batch(device_id: str, *tests: tuple[int, str]) -> agent_pb2.RunTestsRequest:
    return agent_pb2.RunTestsRequest(
        device_id=device_id,
        tests=[agent_pb2.TestToRun(kind=kind, idempotency_key=key) for kind, key in tests],
    )


async def count_tests_run(agent: Any, device_id: str) -> int:
    counters = await agent.GetCounters(agent_pb2.GetCountersRequest(device_id=device_id))
    return int(counters.tests_run)


async def test_results_come_in_the_order_asked_each_as_run_test_answers_it(
    fleet_channel: grpc.aio.Channel,
) -> None:
    agent = stub(fleet_channel)
    # CPE-0013 has a line fault: functional and performance fail, the others pass.
    order = [USER_INTERFACE, PERFORMANCE, SECURITY, FUNCTIONAL, ENVIRONMENTAL]
    before = await count_tests_run(agent, "CPE-0013")
    reply = await agent.RunTests(batch("CPE-0013", *[(k, f"rt-order-{k}") for k in order]))
    assert len(reply.results) == len(order)
    for kind, result in zip(order, reply.results, strict=True):
        single = await agent.RunTest(
            agent_pb2.RunTestRequest(
                device_id="CPE-0013", kind=kind, idempotency_key=f"rt-single-{kind}"
            )
        )
        assert MEASURES[kind] in result.measurements
        assert set(result.measurements) == set(single.measurements)
        assert (result.passed, result.detail) == (single.passed, single.detail)
    assert [r.passed for r in reply.results] == [True, False, True, False, True]
    assert reply.results[1].detail.startswith("performance test failed: line fault")
    # Every test of the batch counts as a test run, as five RunTest calls would.
    assert await count_tests_run(agent, "CPE-0013") == before + 2 * len(order)


async def test_a_key_in_a_batch_behaves_as_the_same_key_in_run_test(
    fleet_channel: grpc.aio.Channel,
) -> None:
    """RunTest's keys are required and logged, not replayed: a test changes nothing, so a
    repeat measures the device as it is now. RunTests keeps exactly that: a repeat of a batch,
    or a batch holding an earlier RunTest's key, measures again."""
    agent = stub(fleet_channel)
    device = "CPE-0004"
    single = agent_pb2.RunTestRequest(device_id=device, kind=SECURITY, idempotency_key="rk-sec")
    request = batch(device, (FUNCTIONAL, "rk-fun"), (SECURITY, "rk-sec"))
    assert (await agent.RunTest(single)).passed
    first = await agent.RunTests(request)
    assert [r.passed for r in first.results] == [True, True]
    # A failed protection fails the security test from now on.
    await agent.InjectFault(
        agent_pb2.InjectFaultRequest(device_id=device, category=device_pb2.HEALTH_CATEGORY_SAFETY)
    )
    again = await agent.RunTests(request)
    again_single = await agent.RunTest(single)
    assert [r.passed for r in again.results] == [True, False]
    assert again.results[1].detail == again_single.detail == "security test failed: safety fault"
    assert not again_single.passed
    await agent.ClearFault(agent_pb2.ClearFaultRequest(device_id=device))


def _too_many() -> agent_pb2.RunTestsRequest:
    return batch("CPE-0005", *[(FUNCTIONAL, f"many-{i}") for i in range(33)])


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (batch("CPE-0005"), "tests"),
        (_too_many(), "tests"),
        (batch("", (FUNCTIONAL, "bad-1")), "device_id"),
        (batch("CPE-0005", (FUNCTIONAL, "dup"), (SECURITY, "dup")), "tests[1].idempotency_key"),
        (batch("CPE-0005", (FUNCTIONAL, "bad-2"), (SECURITY, "")), "tests[1].idempotency_key"),
        (
            batch("CPE-0005", (FUNCTIONAL, "bad-3"), (agent_pb2.TEST_KIND_UNSPECIFIED, "bad-4")),
            "tests[1].kind",
        ),
        (batch("CPE-0005", (99, "bad-5")), "tests[0].kind"),
    ],
    ids=[
        "no-tests",
        "33-tests",
        "no-device",
        "key-twice",
        "no-key",
        "no-kind",
        "unknown-kind",
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field_and_runs_nothing(
    fleet_channel: grpc.aio.Channel, request_: agent_pb2.RunTestsRequest, field: str
) -> None:
    agent = stub(fleet_channel)
    before = await count_tests_run(agent, "CPE-0005")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await agent.RunTests(request_)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(exc.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == [field]
    # The whole request is checked first: not even the tests before the bad one ran.
    assert await count_tests_run(agent, "CPE-0005") == before


async def test_thirty_two_tests_are_accepted(fleet_channel: grpc.aio.Channel) -> None:
    agent = stub(fleet_channel)
    kinds = list(MEASURES)
    reply = await agent.RunTests(
        batch("CPE-0006", *[(kinds[i % len(kinds)], f"cap-{i}") for i in range(32)])
    )
    assert len(reply.results) == 32
    assert all(
        MEASURES[kinds[i % len(kinds)]] in r.measurements for i, r in enumerate(reply.results)
    )


async def test_an_unknown_device_is_not_found(fleet_channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub(fleet_channel).RunTests(batch("CPE-9999", (FUNCTIONAL, "nf")))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


async def test_run_tests_admits_callers_as_run_test_does(spawn: Any) -> None:
    """No call of the fleet needs a role (fleet/app.py): anonymous callers and any verified
    token are served; a token that does not verify is UNAUTHENTICATED, for both."""
    sim = await spawn(
        "orderline_simulators.fleet",
        {
            "ORDERLINE_FLEET_PORT": "0",
            "ORDERLINE_FLEET_DEVICES": "3",
            "ORDERLINE_TELEMETRY_TARGET": "",
            "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS": "true",
        },
    )
    single = agent_pb2.RunTestRequest(device_id="CPE-0002", kind=SECURITY, idempotency_key="c-1")
    request = batch("CPE-0002", (SECURITY, "c-2"))
    async with grpc.aio.insecure_channel(sim.address) as channel:
        agent = stub(channel)
        for token in (None, "dev-service", "dev-clerk"):
            metadata = (("authorization", f"Bearer {token}"),) if token else None
            assert len((await agent.RunTests(request, metadata=metadata)).results) == 1
            await agent.RunTest(single, metadata=metadata)
        for call, message in ((agent.RunTests, request), (agent.RunTest, single)):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await call(message, metadata=(("authorization", "Bearer forged-token"),))
            assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
