"""Demo orders for `orderline up`: a realistic mix, one of them on an overheating device, one
waiting in the review queue and one pending."""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import time

import grpc

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_catalogue import load_catalogue
from orderline_cli.channels import open_channel
from orderline_runtime.ids import new_id

# The fleet starts with this device overheating, so one demo order shows the hold path.
FAULTY_DEVICE = "CPE-0013:thermal"

# Identity numbers with valid GB 11643 check digits, regions and birth dates (intake checks).
CUSTOMERS = [
    ("张伟", "+8613800138001", "11010519491231002X", "北京市朝阳区建国路88号", "zh-CN"),
    ("王芳", "+8613800138002", "310115198803150045", "上海市浦东新区世纪大道100号", "zh-CN"),
    ("Li Na", "+8613800138003", "440305199001010034", "深圳市南山区科技园1号", "en"),
    ("刘洋", "+8613800138004", "330106198512120054", "杭州市西湖区文三路20号", "zh-CN"),
    ("陈静", "+8613800138005", "510107199207070067", "成都市武侯区天府大道5号", "zh-CN"),
]
CHANNELS = [
    order_pb2.CONTACT_CHANNEL_SMS,
    order_pb2.CONTACT_CHANNEL_SMS,
    order_pb2.CONTACT_CHANNEL_PHONE,
    order_pb2.CONTACT_CHANNEL_SMS,
    order_pb2.CONTACT_CHANNEL_UNSPECIFIED,
]
TYPES = [
    ("broadband_install", "fiber-500m"),
    ("iptv", "iptv-basic"),
    ("fixed_line", "voice-unlimited"),
    ("plan_change", "fiber-1000m"),
    ("dedicated_line", "dl-100m"),
]

# The fleet simulator gives device CPE-n the n-th of these models in turn, each with firmware
# at or above every minimum of the catalogue (simulators: fleet/domain.py MODELS). Provisioning
# checks the device's real model before it configures it, so a demo order names a business
# type that its device's model is allowed for (an IPTV set-top box gets no broadband order).
FLEET_MODELS = ("HG8245H5 ONT", "ZXHN F670L ONT", "B860AV2.1 IPTV STB", "DSL-2750U VDSL router")
_FLEET_ID = re.compile(r"^CPE-(\d+)$")


def fleet_model(device_id: str) -> str | None:
    """The model the fleet simulator gives `device_id`, or None for an id it does not make."""
    match = _FLEET_ID.match(device_id)
    if match is None or int(match.group(1)) < 1:
        return None
    return FLEET_MODELS[(int(match.group(1)) - 1) % len(FLEET_MODELS)]


def business_type_for(i: int, device: str) -> tuple[str, str]:
    """The i-th of TYPES, or the next one in turn that the device's model is allowed for."""
    model = fleet_model(device)
    catalogue = load_catalogue()
    for k in range(len(TYPES)):
        business_type, plan = TYPES[(i + k) % len(TYPES)]
        business = catalogue.get(business_type)
        if model is None or (business is not None and business.device_model(model)):
            return business_type, plan
    return TYPES[i % len(TYPES)]


# The documents each demo business type attaches: those its catalogue entry requires.
DOCUMENTS = {
    "broadband_install": ("identity_copy",),
    "fixed_line": ("identity_copy",),
    "dedicated_line": ("identity_copy", "business_licence", "service_contract"),
    "iptv": (),
    "plan_change": (),
}


# Every demo order is for its own flat: intake's review sends an order of the same customer,
# address and business type as an open one to a person (a possible duplicate), and the demo,
# the end-to-end tests and the bench reuse five customers for many orders that must flow.
# The building differs between processes, the flat within one.
_BUILDING = 1 + secrets.randbelow(999)
_FLATS = itertools.count(101)


def demo_request(i: int, device: str) -> order_pb2.CreateOrderRequest:
    return _request(i, device, *business_type_for(i, device))


def _request(i: int, device: str, business_type: str, plan: str) -> order_pb2.CreateOrderRequest:
    name, phone, id_number, street, locale = CUSTOMERS[i % len(CUSTOMERS)]
    address = f"{street}{_BUILDING}号楼{next(_FLATS)}室"
    return order_pb2.CreateOrderRequest(
        client_request_id=f"demo-{new_id()}",
        business_type=business_type,
        customer=order_pb2.Customer(
            name=name,
            phone=phone,
            identity=order_pb2.Identity(resident_id=id_number),
            address=address,
            locale=locale,
            preferred_channel=CHANNELS[i % len(CHANNELS)],
        ),
        device_id=device,
        plan=plan,
        documents=[_document(kind, name) for kind in DOCUMENTS[business_type]],
    )


def _document(kind: str, owner: str) -> order_pb2.Document:
    # Stands for a scan the clerk uploaded: what the order keeps is its hash and size.
    content = f"demo {kind} of {owner}".encode()
    return order_pb2.Document(
        type=kind, sha256=hashlib.sha256(content).hexdigest(), size_bytes=180_000 + len(content)
    )


def review_request(device: str) -> order_pb2.CreateOrderRequest:
    """A customer with a passport: no check digit to check, so a reviewer compares it with the
    copy (the order waits in the review queue)."""
    request = _request(0, device, *TYPES[0])
    request.customer.name = "John Smith"
    request.customer.locale = "en"
    request.customer.identity.passport.number = "K12345678"
    request.customer.identity.passport.issuing_country = "GBR"
    return request


def pending_request(device: str) -> order_pb2.CreateOrderRequest:
    """A broadband order for a set-top box: not a model broadband allows, so the order waits in
    `pending` for the clerk to name another (device_model)."""
    request = _request(0, device, *TYPES[0])
    request.device_model = "B860AV2.1 IPTV STB"
    return request


def submit(intake_address: str, count: int) -> list[str]:
    """Creates `count` orders, the last one on the faulty device, then (with count > 1) one
    for the review queue and one pending. Returns their ids."""
    faulty = FAULTY_DEVICE.split(":", 1)[0]
    requests = [
        demo_request(i, faulty if i == count - 1 and count > 1 else f"CPE-{i + 1:04d}")
        for i in range(count)
    ]
    if count > 1:
        requests += [
            review_request(f"CPE-{count + 1:04d}"),
            pending_request(f"CPE-{count + 2:04d}"),
        ]
    ids = []
    with open_channel(intake_address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        for request in requests:
            reply = stub.CreateOrder(
                request, metadata=(("authorization", "Bearer dev-clerk"),), timeout=10
            )
            ids.append(reply.order.id)
    return ids


def faulty_devices(faults: str) -> list[str]:
    """The device ids of a fault list as the fleet takes it ("CPE-0013:thermal,…")."""
    return sorted({f.split(":", 1)[0].strip() for f in faults.split(",") if f.strip()})


def wait_until_abnormal(
    device_monitor_address: str, device_ids: list[str], within: float = 60.0
) -> list[str]:
    """Waits until device-monitor reports each device abnormal; returns those it still does not.

    A fault injected at the fleet's start shows only once its rule's pending period has passed.
    An order submitted on the device before that would pass its checklist and fail its tests
    instead of showing the hold path the demo is there to show, so the demo waits for it.
    """
    waiting = list(device_ids)
    deadline = time.monotonic() + within
    with open_channel(device_monitor_address) as channel:
        stub = device_pb2_grpc.DeviceHealthServiceStub(channel)
        while waiting and time.monotonic() < deadline:
            for device_id in list(waiting):
                try:
                    reply = stub.GetDeviceHealth(
                        device_pb2.GetDeviceHealthRequest(device_id=device_id),
                        metadata=(("authorization", "Bearer dev-engineer"),),
                        timeout=5,
                    )
                except grpc.RpcError:
                    continue  # not seen yet, or device-monitor busy: ask again
                if reply.health.state == device_pb2.HEALTH_STATE_ABNORMAL:
                    waiting.remove(device_id)
            if waiting:
                time.sleep(0.5)
    return waiting
