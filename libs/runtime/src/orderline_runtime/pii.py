"""Masking of personal data before it reaches logs, events or spans."""

from __future__ import annotations


def mask_phone(phone: str) -> str:
    """+8613800138000 -> +86138****8000: enough to tell numbers apart, not to call one."""
    if len(phone) <= 8:
        return "*" * max(0, len(phone) - 2) + phone[-2:]
    return phone[:-8] + "****" + phone[-4:]


def mask_id_number(id_number: str) -> str:
    """Keeps the region prefix and the check digit of a resident ID number."""
    if len(id_number) <= 4:
        return "*" * len(id_number)
    return id_number[:3] + "*" * (len(id_number) - 4) + id_number[-1:]


def mask_address(address: str) -> str:
    """Keeps the first few characters (city, district), never the street and number."""
    keep = min(6, len(address) // 3)
    return address[:keep] + "***" if address else ""
