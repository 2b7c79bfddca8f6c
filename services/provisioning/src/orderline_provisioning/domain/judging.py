# ruff: noqa: RUF001
"""Judging device tests (作业程序 五) against the business type's test profile, and the
adjustment loop: which settings to apply after a failing round, and when to stop.

Plain functions over catalogue values; the step (app/steps.py) makes the calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orderline_catalogue import Measurement, TestProfile, TestSpec
from orderline_provisioning.domain.job import Finding, TestResult

BELOW_MIN = "BELOW_MIN"
ABOVE_MAX = "ABOVE_MAX"
MISSING = "MISSING"
OUT_OF_RANGE = "OUT_OF_RANGE"


@dataclass(frozen=True)
class Reading:
    """A test as the device agent reported it."""

    kind: str
    device_passed: bool
    detail: str
    measurements: Mapping[str, float]


def judge(
    reading: Reading,
    spec: TestSpec | None,
    measurements: Mapping[str, Measurement],
    round_no: int = 1,
) -> TestResult:
    """The reading against the spec's criteria. Any reported value outside the range a real
    device can give (or not a number), or a criterion's measurement missing, makes the result
    invalid: a broken report, not a pass and not an ordinary failure."""
    findings: list[Finding] = []
    implausible: list[Finding] = []
    for name, value in sorted(reading.measurements.items()):
        known = measurements.get(name)
        if not math.isfinite(value) or (known is not None and not known.plausible(value)):
            implausible.append(Finding(name, value, problem=OUT_OF_RANGE))
    bad = {f.measurement for f in implausible}
    for criterion in spec.criteria if spec is not None else ():
        name = criterion.measurement
        if name in bad:
            continue
        got = reading.measurements.get(name)
        if got is None:
            problem = MISSING
        elif criterion.min is not None and got < criterion.min:
            problem = BELOW_MIN
        elif criterion.max is not None and got > criterion.max:
            problem = ABOVE_MAX
        else:
            problem = ""
        findings.append(Finding(name, got, criterion.min, criterion.max, problem))
    findings = implausible + findings
    invalid = any(f.problem in (OUT_OF_RANGE, MISSING) for f in findings)
    passed = not invalid and reading.device_passed and all(f.ok for f in findings)
    return TestResult(
        kind=reading.kind,
        passed=passed,
        detail=_detail(reading, findings, passed),
        measurements=dict(reading.measurements),
        findings=tuple(findings),
        round=round_no,
        invalid=invalid,
        device_passed=reading.device_passed,
    )


def _detail(reading: Reading, findings: Sequence[Finding], passed: bool) -> str:
    """In English for logs and the job's detail; texts() gives both languages."""
    if passed:
        return reading.detail
    problems = [_problem_en(f) for f in findings if not f.ok]
    if not problems and not reading.device_passed:
        problems = [reading.detail]
    return "; ".join(problems)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


def _problem_en(f: Finding) -> str:
    if f.problem == OUT_OF_RANGE:
        return f"{f.measurement} {_fmt(f.value)} is out of any real range (broken report)"
    if f.problem == MISSING:
        return f"{f.measurement} not reported"
    if f.problem == BELOW_MIN:
        return f"{f.measurement} {_fmt(f.value)} < {_fmt(f.min)}"
    return f"{f.measurement} {_fmt(f.value)} > {_fmt(f.max)}"


_KIND_NAMES = {
    "functional": ("Functional test", "功能测试"),
    "performance": ("Performance test", "性能测试"),
    "security": ("Security test", "安全测试"),
    "environmental": ("Environmental test", "环境测试"),
    "user_interface": ("User interface test", "用户界面测试"),
}


def texts(result: TestResult, measurements: Mapping[str, Measurement]) -> dict[str, str]:
    """The result in words for the clerk, by locale ("en", "zh-CN")."""
    en_kind, zh_kind = _KIND_NAMES.get(result.kind, (result.kind, result.kind))

    def name(key: str, locale: str) -> str:
        known = measurements.get(key)
        return known.names.get(locale, key) if known is not None else key

    def unit(key: str) -> str:
        known = measurements.get(key)
        return known.unit if known is not None else ""

    en: list[str] = []
    zh: list[str] = []
    for f in result.findings:
        if f.ok:
            continue
        value = f"{_fmt(f.value)}{unit(f.measurement)}"
        if f.problem == OUT_OF_RANGE:
            en.append(f"{name(f.measurement, 'en')} reported {value}, impossible: broken report")
            zh.append(f"{name(f.measurement, 'zh-CN')}上报值{value}超出可能范围，测试报告无效")
        elif f.problem == MISSING:
            en.append(f"{name(f.measurement, 'en')} not reported")
            zh.append(f"未上报{name(f.measurement, 'zh-CN')}")
        elif f.problem == BELOW_MIN:
            limit = f"{_fmt(f.min)}{unit(f.measurement)}"
            en.append(f"{name(f.measurement, 'en')} {value}, below {limit}")
            zh.append(f"{name(f.measurement, 'zh-CN')}{value}，低于{limit}")
        else:
            limit = f"{_fmt(f.max)}{unit(f.measurement)}"
            en.append(f"{name(f.measurement, 'en')} {value}, above {limit}")
            zh.append(f"{name(f.measurement, 'zh-CN')}{value}，高于{limit}")
    if result.passed:
        return {"en": f"{en_kind} passed (round {result.round})",
                "zh-CN": f"{zh_kind}通过（第{result.round}轮）"}  # fmt: skip
    if not en:
        en, zh = [result.detail], [result.detail]
    return {
        "en": f"{en_kind} failed (round {result.round}): " + "; ".join(en),
        "zh-CN": f"{zh_kind}未通过（第{result.round}轮）：" + "；".join(zh),
    }


@dataclass(frozen=True)
class Adjustment:
    """What to apply before the next round: per failed kind, the profile's next step."""

    by_kind: Mapping[str, Mapping[str, str]]

    @property
    def settings(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for step in self.by_kind.values():
            merged.update(step)
        return merged


def next_adjustment(
    profile: TestProfile, results: Sequence[TestResult], round_no: int
) -> Adjustment | None:
    """After round `round_no` (1-based) with `results`: the adjustment to apply and test
    again, or None when the loop is over: all passed, a broken report, the profile's rounds
    used up, or a failed test with no adjustment left (it would fail again whatever the
    others do, so the device is not changed for nothing)."""
    failed = [r for r in results if not r.passed]
    if not failed or any(r.invalid for r in failed) or round_no >= profile.rounds:
        return None
    steps: dict[str, Mapping[str, str]] = {}
    for result in failed:
        spec = profile.specs.get(result.kind)
        if spec is None or round_no - 1 >= len(spec.adjustments):
            return None
        steps[result.kind] = spec.adjustments[round_no - 1]
    return Adjustment(steps)
