# Chinese texts use full-width punctuation, as Chinese is written.
# ruff: noqa: RUF001
"""The pre-operation checklist (作业前检查): what must hold before a job touches the device.

Five items, each recorded with its result on the job, in this order:

- `device_fit`: device-monitor's CheckFitness (domain/prechecks.py decides what it means);
- `device_model`: the device (the agent's GetDeviceInfo) is a model the business type allows;
- `firmware`: its firmware is at or above the catalogue's minimum for that model;
- `work_instruction`: the business type's versioned work instruction is attached;
- `operator_certified`: the job's operator holds a certification for the business type.

A failed item holds the job before configuration (a person must act: another device, a
firmware upgrade, a certification); an item still waiting for an answer (no telemetry yet, a
peer unreachable) is retried until the prechecks wait has passed. Pure: no I/O here.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orderline_catalogue import BusinessType
from orderline_provisioning.domain.prechecks import Fitness, Verdict, decide_prechecks
from orderline_provisioning.domain.texts import EN, ZH_CN, business_label

UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
DEVICE_MODEL_NOT_ALLOWED = "DEVICE_MODEL_NOT_ALLOWED"
FIRMWARE_TOO_OLD = "FIRMWARE_TOO_OLD"
NO_WORK_INSTRUCTION = "NO_WORK_INSTRUCTION"
OPERATOR_NOT_CERTIFIED = "OPERATOR_NOT_CERTIFIED"
DEVICE_AGENT_UNAVAILABLE = "DEVICE_AGENT_UNAVAILABLE"


class Item(enum.StrEnum):
    DEVICE_FIT = "device_fit"
    DEVICE_MODEL = "device_model"
    FIRMWARE = "firmware"
    WORK_INSTRUCTION = "work_instruction"
    OPERATOR_CERTIFIED = "operator_certified"


class Result(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # Awaiting an answer; retried.
    PENDING = "pending"
    # Meaningless after an earlier item (an unknown device has no fitness or firmware).
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ChecklistItem:
    item: Item
    result: Result
    checked_at: datetime
    reason: str = ""
    evidence: Mapping[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.result is Result.PASSED

    def to_record(self) -> dict[str, object]:
        """As stored with the job (a JSON column)."""
        return {
            "item": self.item.value,
            "result": self.result.value,
            "reason": self.reason,
            "evidence": dict(self.evidence),
            "checked_at": self.checked_at.isoformat(),
        }

    @functools.cached_property
    def record(self) -> Mapping[str, object]:
        """`to_record()`, built once per item (not to be changed): the worker saves the job's
        checklist with every step, though only the prechecks step makes a new one (issue #8:
        the five records were most of the cost of building a job's row)."""
        return self.to_record()

    @classmethod
    def from_record(cls, raw: Mapping[str, object]) -> ChecklistItem:
        evidence = raw.get("evidence") or {}
        assert isinstance(evidence, dict)
        return cls(
            item=Item(str(raw["item"])),
            result=Result(str(raw["result"])),
            checked_at=datetime.fromisoformat(str(raw["checked_at"])),
            reason=str(raw.get("reason") or ""),
            evidence={str(k): str(v) for k, v in evidence.items()},
        )


@dataclass(frozen=True)
class DeviceInfo:
    """What the device agent says the device is."""

    model: str
    firmware: str
    # The configuration version in force (1: the factory configuration); None: not said. The
    # activate step compares it with the job's (domain/config_loss.py).
    config_version: int | None = None


class UnknownDevice:
    """The agent does not know the device id (GetDeviceInfo NOT_FOUND)."""


UNKNOWN = UnknownDevice()


@dataclass(frozen=True)
class ChecklistFacts:
    """The answers the checklist is judged on. `device` None: the agent did not answer;
    `fitness` None: device-monitor did not answer (or was not asked: an unknown device)."""

    business_type: str
    business: BusinessType | None
    device: DeviceInfo | UnknownDevice | None
    fitness: Fitness | None
    operator: str
    certified: bool
    fitness_detail: str = ""


@dataclass(frozen=True)
class ChecklistDecision:
    verdict: Verdict
    items: tuple[ChecklistItem, ...]
    reason: str = ""
    alarm_id: str = ""
    detail: str = ""


def decide_checklist(
    facts: ChecklistFacts, now: datetime, waited: timedelta, wait: timedelta
) -> ChecklistDecision:
    """Every item judged; the job passes when all pass, is held on the first failed item (in
    checklist order), and is retried while an item awaits an answer and none failed."""
    items = (
        _fitness(facts, now, waited, wait),
        *_device(facts, now, waited, wait),
        _instruction(facts, now),
        _operator(facts, now),
    )
    failed = [i for i in items if i.result is Result.FAILED]
    if failed:
        first = failed[0]
        alarm = first.evidence.get("alarm_id", "") if first.item is Item.DEVICE_FIT else ""
        detail = "; ".join(texts(i, facts.business_type)[EN] for i in failed)
        return ChecklistDecision(Verdict.HOLD, items, first.reason, alarm, detail)
    pending = [i for i in items if i.result is Result.PENDING]
    if pending:
        detail = "; ".join(texts(i, facts.business_type)[EN] for i in pending)
        return ChecklistDecision(Verdict.RETRY, items, pending[0].reason, detail=detail)
    return ChecklistDecision(Verdict.PASS, items)


def _fitness(
    facts: ChecklistFacts, now: datetime, waited: timedelta, wait: timedelta
) -> ChecklistItem:
    if isinstance(facts.device, UnknownDevice):
        return ChecklistItem(Item.DEVICE_FIT, Result.SKIPPED, now, UNKNOWN_DEVICE)
    decision = decide_prechecks(facts.fitness, waited, wait)
    evidence = {}
    if decision.alarm_id:
        evidence["alarm_id"] = decision.alarm_id
    if facts.fitness_detail:
        evidence["detail"] = facts.fitness_detail
    result = {
        Verdict.PASS: Result.PASSED,
        Verdict.HOLD: Result.FAILED,
        Verdict.RETRY: Result.PENDING,
    }[decision.verdict]
    return ChecklistItem(Item.DEVICE_FIT, result, now, decision.reason, evidence)


def _device(
    facts: ChecklistFacts, now: datetime, waited: timedelta, wait: timedelta
) -> tuple[ChecklistItem, ChecklistItem]:
    device = facts.device
    if device is None:
        # Like an unreachable device-monitor: retried, then held once the wait is over.
        result = Result.FAILED if waited >= wait else Result.PENDING
        return (
            ChecklistItem(Item.DEVICE_MODEL, result, now, DEVICE_AGENT_UNAVAILABLE),
            ChecklistItem(Item.FIRMWARE, result, now, DEVICE_AGENT_UNAVAILABLE),
        )
    if isinstance(device, UnknownDevice):
        return (
            ChecklistItem(Item.DEVICE_MODEL, Result.FAILED, now, UNKNOWN_DEVICE),
            ChecklistItem(Item.FIRMWARE, Result.SKIPPED, now, UNKNOWN_DEVICE),
        )
    business = facts.business
    allowed = business.device_model(device.model) if business is not None else None
    if allowed is None:
        models = ", ".join(m.model for m in business.device_models) if business else ""
        return (
            ChecklistItem(
                Item.DEVICE_MODEL,
                Result.FAILED,
                now,
                DEVICE_MODEL_NOT_ALLOWED,
                {"model": device.model, "allowed": models},
            ),
            ChecklistItem(
                Item.FIRMWARE,
                Result.SKIPPED,
                now,
                DEVICE_MODEL_NOT_ALLOWED,
                {"firmware": device.firmware},
            ),
        )
    model = ChecklistItem(Item.DEVICE_MODEL, Result.PASSED, now, evidence={"model": device.model})
    evidence = {"firmware": device.firmware, "minimum": allowed.min_firmware}
    if allowed.admits(device.firmware):
        return model, ChecklistItem(Item.FIRMWARE, Result.PASSED, now, evidence=evidence)
    return model, ChecklistItem(Item.FIRMWARE, Result.FAILED, now, FIRMWARE_TOO_OLD, evidence)


def _instruction(facts: ChecklistFacts, now: datetime) -> ChecklistItem:
    if facts.business is None:
        return ChecklistItem(Item.WORK_INSTRUCTION, Result.FAILED, now, NO_WORK_INSTRUCTION)
    instruction = facts.business.work_instruction
    return ChecklistItem(
        Item.WORK_INSTRUCTION,
        Result.PASSED,
        now,
        evidence={
            "document": instruction.document,
            "version": instruction.version,
            "reference": instruction.reference,
        },
    )


def _operator(facts: ChecklistFacts, now: datetime) -> ChecklistItem:
    evidence = {"operator": facts.operator}
    if facts.certified:
        return ChecklistItem(Item.OPERATOR_CERTIFIED, Result.PASSED, now, evidence=evidence)
    return ChecklistItem(
        Item.OPERATOR_CERTIFIED, Result.FAILED, now, OPERATOR_NOT_CERTIFIED, evidence
    )


# --- texts --------------------------------------------------------------------------------------


def texts(item: ChecklistItem, business_type: str = "") -> dict[str, str]:
    """The item's result in words, in English and Chinese."""
    e = item.evidence
    zh_kind = business_label(business_type, ZH_CN) if business_type else "该业务"
    en_kind = business_label(business_type, EN) if business_type else "this business type"
    if item.result is Result.PASSED:
        return _passed(item, e, en_kind, zh_kind)
    if item.result is Result.SKIPPED:
        return {
            EN: f"{item.item.value.replace('_', ' ')}: not checked ({_reason_en(item.reason)})",
            ZH_CN: f"{_ZH_ITEM[item.item]}：未检查（{_reason_zh(item.reason)}）",
        }
    return _not_passed(item, e, en_kind, zh_kind)


_ZH_ITEM = {
    Item.DEVICE_FIT: "设备状态",
    Item.DEVICE_MODEL: "设备型号",
    Item.FIRMWARE: "固件版本",
    Item.WORK_INSTRUCTION: "作业指导书",
    Item.OPERATOR_CERTIFIED: "操作人员资质",
}


def _reason_en(reason: str) -> str:
    return reason.lower().replace("_", " ")


def _reason_zh(reason: str) -> str:
    return {
        UNKNOWN_DEVICE: "设备不存在",
        DEVICE_MODEL_NOT_ALLOWED: "设备型号不适用",
        DEVICE_AGENT_UNAVAILABLE: "设备代理无响应",
    }.get(reason, reason)


def _passed(item: ChecklistItem, e: Mapping[str, str], en: str, zh: str) -> dict[str, str]:
    if item.item is Item.DEVICE_FIT:
        return {EN: "the device is fit for work", ZH_CN: "设备状态正常，可以作业"}
    if item.item is Item.DEVICE_MODEL:
        return {
            EN: f"model {e.get('model', '')} is allowed for {en}",
            ZH_CN: f"设备型号 {e.get('model', '')} 适用于{zh}",
        }
    if item.item is Item.FIRMWARE:
        minimum = e.get("minimum", "")
        if not minimum:
            return {
                EN: f"firmware {e.get('firmware', '')}: any firmware will do",
                ZH_CN: f"固件 {e.get('firmware', '')}：不限固件版本",
            }
        return {
            EN: f"firmware {e.get('firmware', '')} is at or above {minimum}",
            ZH_CN: f"固件 {e.get('firmware', '')} 不低于 {minimum}",
        }
    if item.item is Item.WORK_INSTRUCTION:
        return {
            EN: f"work instruction {e.get('reference', '')} attached",
            ZH_CN: f"已附作业指导书 {e.get('reference', '')}",
        }
    return {
        EN: f"operator {e.get('operator', '')} is certified for {en}",
        ZH_CN: f"操作人员 {e.get('operator', '')} 具备{zh}作业资质",
    }


def _not_passed(item: ChecklistItem, e: Mapping[str, str], en: str, zh: str) -> dict[str, str]:
    reason = item.reason
    waiting = item.result is Result.PENDING
    if reason == UNKNOWN_DEVICE:
        return {
            EN: "unknown device: the fleet does not know it",
            ZH_CN: "设备不存在：设备管理系统中无此设备",
        }
    if reason == DEVICE_AGENT_UNAVAILABLE:
        return {
            EN: "the device agent did not answer" + (" (will retry)" if waiting else ""),
            ZH_CN: "设备代理无响应" + ("（将重试）" if waiting else ""),
        }
    if reason == DEVICE_MODEL_NOT_ALLOWED:
        return {
            EN: f"model {e.get('model', '')} is not allowed for {en} "
            f"(allowed: {e.get('allowed', '')})",
            ZH_CN: f"设备型号 {e.get('model', '')} 不适用于{zh}"
            f"（适用型号：{e.get('allowed', '')}）",
        }
    if reason == FIRMWARE_TOO_OLD:
        return {
            EN: f"firmware {e.get('firmware', '')} is below the minimum {e.get('minimum', '')}",
            ZH_CN: f"固件 {e.get('firmware', '')} 低于最低版本 {e.get('minimum', '')}",
        }
    if reason == NO_WORK_INSTRUCTION:
        return {
            EN: f"no work instruction for {en} in the catalogue",
            ZH_CN: f"业务目录中没有{zh}的作业指导书",
        }
    if reason == OPERATOR_NOT_CERTIFIED:
        return {
            EN: f"operator {e.get('operator', '')} is not certified for {en}",
            ZH_CN: f"操作人员 {e.get('operator', '')} 不具备{zh}作业资质",
        }
    # The fitness reasons of domain/prechecks.py.
    alarm = e.get("alarm_id", "")
    fitness = {
        "DEVICE_ABNORMAL": (f"the device is abnormal (alarm {alarm})", f"设备异常（告警 {alarm}）"),
        "DEVICE_UNFIT": ("the device is not fit for work", "设备状态不适合作业"),
        "NO_TELEMETRY": ("no telemetry from the device yet", "尚未收到设备遥测数据"),
        "DEVICE_MONITOR_UNAVAILABLE": ("device-monitor did not answer", "设备监控服务无响应"),
    }
    en_text, zh_text = fitness.get(reason, (_reason_en(reason), reason))
    if waiting:
        en_text, zh_text = en_text + " (will retry)", zh_text + "（将重试）"
    return {EN: en_text, ZH_CN: zh_text}
