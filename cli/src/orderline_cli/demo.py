"""Demo orders for `orderline up`: a realistic mix, one of them on an overheating device."""

from __future__ import annotations

import grpc

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_runtime.ids import new_id

# The fleet starts with this device overheating, so one demo order shows the hold path.
FAULTY_DEVICE = "CPE-0013:thermal"

CUSTOMERS = [
    ("张伟", "+8613800138001", "110105194912310021", "北京市朝阳区建国路88号", "zh-CN"),
    ("王芳", "+8613800138002", "310115198803150042", "上海市浦东新区世纪大道100号", "zh-CN"),
    ("Li Na", "+8613800138003", "440305199001010033", "深圳市南山区科技园1号", "en"),
    ("刘洋", "+8613800138004", "330106198512120054", "杭州市西湖区文三路20号", "zh-CN"),
    ("陈静", "+8613800138005", "510107199207070065", "成都市武侯区天府大道5号", "zh-CN"),
]
TYPES = [
    ("broadband_install", "fiber-500m"),
    ("iptv", "iptv-basic"),
    ("fixed_line", "voice-unlimited"),
    ("plan_change", "fiber-1000m"),
    ("dedicated_line", "dl-100m"),
]


def demo_request(i: int, device: str) -> order_pb2.CreateOrderRequest:
    name, phone, id_number, address, locale = CUSTOMERS[i % len(CUSTOMERS)]
    business_type, plan = TYPES[i % len(TYPES)]
    return order_pb2.CreateOrderRequest(
        client_request_id=f"demo-{new_id()}",
        business_type=business_type,
        customer=order_pb2.Customer(
            name=name, phone=phone, id_number=id_number, address=address, locale=locale
        ),
        device_id=device,
        plan=plan,
    )


def submit(intake_address: str, count: int) -> list[str]:
    """Creates `count` orders; the last one uses the faulty device. Returns their ids."""
    faulty = FAULTY_DEVICE.split(":", 1)[0]
    ids = []
    with grpc.insecure_channel(intake_address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        for i in range(count):
            device = faulty if i == count - 1 and count > 1 else f"CPE-{i + 1:04d}"
            reply = stub.CreateOrder(
                demo_request(i, device),
                metadata=(("authorization", "Bearer dev-clerk"),),
                timeout=10,
            )
            ids.append(reply.order.id)
    return ids
