# Texts for people use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""Amendment with a field mask: which paths may change, and the order they make."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from orderline_catalogue import Catalogue
from orderline_intake.domain.order import NewOrder, Relocation
from orderline_intake.domain.review import AMENDABLE, RELOCATION_PATHS, amendable_paths
from orderline_intake.domain.text import says
from orderline_runtime.errors import InvalidArgument, Violations

# The request's fields the violations of the amended order are named under.
PREFIX = "order."


def check_mask(paths: Sequence[str], catalogue: Catalogue, business_type: str) -> list[str]:
    """The mask's paths, each once; InvalidArgument on `update_mask` naming every path that
    may not be amended (and why), so a refused amendment changes nothing."""
    v = Violations()
    if not paths:
        v.add("update_mask", str(says("name at least one field to amend", "请指定要修改的字段")))
    allowed = amendable_paths(catalogue, business_type)
    for path in paths:
        if path in allowed:
            continue
        if path in RELOCATION_PATHS:
            text = says(
                f"{path}: only a relocation has it, not {business_type}",
                f"{path}：仅移机业务可修改",
            )
        elif path == "business_type":
            text = says(
                "business_type cannot be amended: another type is another order",
                "业务类型不可修改，请新建工单",
            )
        else:
            text = says(
                f"{path} cannot be amended; one of {', '.join(AMENDABLE)}", f"{path}不可修改"
            )
        v.add("update_mask", str(text))
    v.raise_if_any()
    return list(dict.fromkeys(paths))


def apply_mask(current: NewOrder, patch: NewOrder, paths: Sequence[str]) -> NewOrder:
    """`current` with the masked fields taken from `patch`; nothing else of the patch."""
    customer = current.customer
    pc = patch.customer
    relocation = current.relocation or Relocation()
    amended = current
    for path in paths:
        match path:
            case "customer.name":
                customer = replace(customer, name=pc.name)
            case "customer.phone":
                customer = replace(customer, phone=pc.phone)
            case "customer.identity":
                customer = replace(
                    customer,
                    id_type=pc.id_type,
                    id_number=pc.id_number,
                    passport_country=pc.passport_country,
                )
            case "customer.address":
                customer = replace(customer, address=pc.address)
            case "customer.locale":
                customer = replace(customer, locale=pc.locale)
            case "customer.preferred_channel":
                customer = replace(customer, preferred_channel=pc.preferred_channel)
            case "relocation.old_address":
                old = patch.relocation.old_address if patch.relocation else ""
                relocation = replace(relocation, old_address=old)
            case "relocation.new_address":
                new = patch.relocation.new_address if patch.relocation else ""
                relocation = replace(relocation, new_address=new)
            case "device_id":
                amended = replace(amended, device_id=patch.device_id)
            case "device_model":
                amended = replace(amended, device_model=patch.device_model)
            case "plan":
                amended = replace(amended, plan=patch.plan)
            case "documents":
                amended = replace(amended, documents=patch.documents)
            case _:  # check_mask admits no other path
                raise ValueError(f"not an amendable path: {path}")
    return replace(
        amended,
        customer=customer,
        relocation=relocation if current.relocation or relocation != Relocation() else None,
        id_number_path="customer.identity.resident_id",
    )


def prefixed(refused: InvalidArgument) -> InvalidArgument:
    """The violations of the amended order, named by their path in AmendOrderRequest."""
    v = Violations()
    for item in refused.violations:
        v.add(PREFIX + item.field, item.description)
    return InvalidArgument(v.items)
