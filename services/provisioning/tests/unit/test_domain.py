"""The pure domain: the step machine, decisions, configuration, voucher and texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderline_catalogue import load_catalogue
from orderline_provisioning.domain.config import (
    activation_of,
    build_config,
    config_template,
    needs_customer,
    plan_rate_mbps,
    rollback_target,
)
from orderline_provisioning.domain.job import Job, rejected_reason
from orderline_provisioning.domain.notification import Channel, activation_message, channel_for
from orderline_provisioning.domain.prechecks import Fitness, Health, Verdict, decide_prechecks
from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.domain.steps import (
    FIRST_STEP,
    TEST_KINDS,
    JobState,
    Step,
    idempotency_key,
    next_step,
)
from orderline_provisioning.domain.texts import business_label, normalize_locale
from orderline_provisioning.domain.voucher import (
    is_voucher_id,
    voucher_id_from,
    voucher_texts,
)

T0 = datetime(2025, 3, 1, 2, 30, tzinfo=UTC)
WAIT = timedelta(seconds=60)


def new_job() -> Job:
    return Job(
        id="job-1",
        order_id="ord-1",
        device_id="CPE-0001",
        business_type="broadband_install",
        plan="300M",
        locale="zh-CN",
        created_at=T0,
    )


# --- step machine ---------------------------------------------------------------------------


def test_steps_follow_prechecks_configure_test_activate_notify_done() -> None:
    seen = [FIRST_STEP]
    while seen[-1] is not Step.DONE:
        seen.append(next_step(seen[-1]))
    assert [s.value for s in seen] == [
        "prechecks",
        "configure",
        "test",
        "activate",
        "notify",
        "done",
    ]


def test_done_has_no_next_step() -> None:
    with pytest.raises(ValueError):
        next_step(Step.DONE)


def test_idempotency_keys_name_job_operation_and_kind() -> None:
    assert idempotency_key("j", "configure") == "j:configure"
    assert idempotency_key("j", "test", "functional") == "j:test:functional"
    assert idempotency_key("j", "notify") == "j:notify"
    assert [k.value for k in TEST_KINDS] == [
        "functional",
        "performance",
        "security",
        "environmental",
        "user_interface",
    ]


def test_advancing_through_every_step_completes_the_job() -> None:
    job = new_job()
    assert job.runnable and job.step is Step.PRECHECKS
    for i in range(5):
        job.advance(T0 + timedelta(seconds=i + 1))
    assert job.step is Step.DONE
    assert job.state is JobState.COMPLETED
    assert not job.runnable


def test_advance_resets_the_attempts_of_the_step_but_keeps_the_total() -> None:
    job = new_job()
    job.retry_later("DEVICE_AGENT_UNAVAILABLE", "down", T0, RetryPolicy())
    job.retry_later("DEVICE_AGENT_UNAVAILABLE", "down", T0, RetryPolicy())
    later = T0 + timedelta(seconds=5)
    job.advance(later)
    assert (job.step_attempts, job.attempts, job.reason) == (0, 2, "")
    assert job.step_started_at == later and job.next_attempt_at == later


def test_held_job_does_not_advance() -> None:
    job = new_job()
    job.hold("DEVICE_ABNORMAL", T0, alarm_id="ALM-1")
    assert (job.state, job.reason, job.alarm_id) == (JobState.HELD, "DEVICE_ABNORMAL", "ALM-1")
    with pytest.raises(ValueError):
        job.advance(T0)


def test_failed_job_keeps_its_step() -> None:
    job = new_job()
    job.advance(T0)
    job.advance(T0)
    job.fail("TESTS_FAILED", T0, detail="security")
    assert (job.state, job.step) == (JobState.FAILED, Step.TEST)


def test_rejected_reason_names_the_step() -> None:
    assert rejected_reason(Step.CONFIGURE) == "CONFIGURE_REJECTED"


# --- retries --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum() -> None:
    policy = RetryPolicy(initial_seconds=0.5, max_seconds=4, jitter=0)
    delays = [policy.delay(n).total_seconds() for n in range(1, 7)]
    assert delays == [0.5, 1, 2, 4, 4, 4]


@given(st.integers(min_value=1, max_value=50), st.floats(min_value=0, max_value=1))
def test_backoff_jitter_stays_within_its_band(failures: int, spread: float) -> None:
    policy = RetryPolicy(initial_seconds=1, max_seconds=30, jitter=0.2)
    base = min(2 ** (failures - 1), 30)
    assert 0.8 * base - 1e-9 <= policy.delay(failures, spread).total_seconds() <= 1.2 * base + 1e-9


def test_retry_later_schedules_the_next_attempt() -> None:
    job = new_job()
    at = job.retry_later("X", "", T0, RetryPolicy(initial_seconds=2, jitter=0))
    assert at == T0 + timedelta(seconds=2) == job.next_attempt_at
    assert job.state is JobState.RUNNING and job.step is Step.PRECHECKS


# --- prechecks ------------------------------------------------------------------------------


def test_fit_device_passes_prechecks() -> None:
    d = decide_prechecks(Fitness(True, Health.GOOD), timedelta(0), WAIT)
    assert d.verdict is Verdict.PASS


def test_abnormal_device_is_held_at_once_with_its_alarm() -> None:
    d = decide_prechecks(Fitness(False, Health.ABNORMAL, alarm_id="ALM-7"), timedelta(0), WAIT)
    assert (d.verdict, d.reason, d.alarm_id) == (Verdict.HOLD, "DEVICE_ABNORMAL", "ALM-7")


def test_device_without_telemetry_is_retried_then_held() -> None:
    unknown = Fitness(False, Health.UNKNOWN)
    assert decide_prechecks(unknown, timedelta(seconds=59), WAIT).verdict is Verdict.RETRY
    d = decide_prechecks(unknown, timedelta(seconds=60), WAIT)
    assert (d.verdict, d.reason) == (Verdict.HOLD, "NO_TELEMETRY")


def test_unreachable_device_monitor_is_retried_then_held() -> None:
    assert decide_prechecks(None, timedelta(seconds=1), WAIT).verdict is Verdict.RETRY
    d = decide_prechecks(None, timedelta(seconds=61), WAIT)
    assert (d.verdict, d.reason) == (Verdict.HOLD, "DEVICE_MONITOR_UNAVAILABLE")


def test_unfit_device_in_good_health_is_held() -> None:
    d = decide_prechecks(Fitness(False, Health.GOOD), timedelta(0), WAIT)
    assert (d.verdict, d.reason) == (Verdict.HOLD, "DEVICE_UNFIT")


# --- configuration --------------------------------------------------------------------------


def derive_config(business_type: str, plan: str, phone: str = "") -> dict[str, str]:
    return build_config(
        business_type, order_id="ORD-1", device_id="CPE-0001", plan=plan, customer_phone=phone
    ).settings


def test_broadband_config_has_pppoe_wifi_and_plan_rates() -> None:
    cfg = derive_config("broadband_install", "300M")
    assert cfg["wan.mode"] == "pppoe"
    assert cfg["wan.vlan"] == "100" and cfg["line.profile"] == "standard"
    assert cfg["wifi.enabled"] == "true"
    assert (cfg["qos.downstream_mbps"], cfg["qos.upstream_mbps"]) == ("300", "30")
    assert cfg["service.business_type"] == "broadband_install"
    assert cfg["service.plan"] == "300M" and cfg["service.order_id"] == "ORD-1"
    base = load_catalogue().config_base
    assert cfg["management.default_credentials"] == base["management.default_credentials"]


def test_dedicated_line_is_symmetric_and_static() -> None:
    cfg = derive_config("dedicated_line", "1G")
    assert cfg["wan.mode"] == "static"
    assert cfg["qos.downstream_mbps"] == cfg["qos.upstream_mbps"] == "1000"


def test_termination_disables_the_service_and_sets_no_rates() -> None:
    cfg = derive_config("termination", "300M")
    assert cfg["service.enabled"] == "false"
    assert "qos.downstream_mbps" not in cfg
    assert activation_of("termination") == "deactivate"
    assert activation_of("broadband_install") == "activate"


def test_iptv_channels_come_from_the_plan_and_the_template_default() -> None:
    premium = derive_config("iptv", "iptv-premium")
    assert (premium["iptv.channel_package"], premium["iptv.channels"]) == ("premium", "200")
    other = derive_config("iptv", "iptv-family")
    assert (other["iptv.channel_package"], other["iptv.channels"]) == ("basic", "60")
    assert other["iptv.multicast_vlan"] == "45"


def test_the_fixed_line_number_is_the_customers_and_marked_private() -> None:
    assert needs_customer("fixed_line") and not needs_customer("broadband_install")
    built = build_config(
        "fixed_line", order_id="O", device_id="D", plan="p", customer_phone="+862150001234"
    )
    assert built.settings["voice.number"] == "+862150001234"
    assert built.private == {"voice.number"}
    # Without the number, the setting is left out rather than set empty.
    assert "voice.number" not in derive_config("fixed_line", "p")


def test_unknown_business_type_gets_the_base_configuration() -> None:
    cfg = derive_config("satellite", "")
    assert "service.plan" not in cfg  # no plan: its placeholder has no value
    assert cfg["service.business_type"] == "satellite"
    assert cfg["service.enabled"] == "true"


def test_rollback_returns_to_the_version_before_the_job() -> None:
    assert rollback_target(None, None) is None
    assert rollback_target(4, 7) == 4
    assert rollback_target(None, 3) == 2


@pytest.mark.parametrize(
    ("plan", "rate"),
    [
        ("300M", 300),
        ("fiber-1000m", 1000),
        ("broadband-1G", 1000),
        ("500Mbps", 500),
        ("iptv-basic", None),
        ("", None),
    ],
)
def test_plan_rate_is_read_from_the_plan_name(plan: str, rate: int | None) -> None:
    assert plan_rate_mbps(plan) == rate


@given(st.sampled_from(["broadband_install", "iptv", "fixed_line", "x"]), st.text(max_size=20))
def test_config_derivation_is_total_and_all_strings(business_type: str, plan: str) -> None:
    cfg = derive_config(business_type, plan)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cfg.items())


# --- voucher --------------------------------------------------------------------------------


def test_voucher_id_is_av_and_12_uppercase_base32_characters() -> None:
    vid = voucher_id_from(bytes(range(8)))
    assert vid.startswith("AV-") and len(vid) == 15
    assert is_voucher_id(vid)
    assert not is_voucher_id("AV-abc")
    assert not is_voucher_id("AV-00000000000O")


@given(st.binary(min_size=8, max_size=8))
def test_any_entropy_makes_a_valid_voucher_id(entropy: bytes) -> None:
    assert is_voucher_id(voucher_id_from(entropy))


def test_voucher_texts_exist_in_chinese_and_english() -> None:
    texts = voucher_texts("AV-ABCDEFGHIJKL", "broadband_install", "300M", "CPE-0001", T0)
    assert set(texts) == {"zh-CN", "en"}
    assert texts["zh-CN"].startswith("业务开通凭证 AV-ABCDEFGHIJKL")
    assert "宽带新装" in texts["zh-CN"] and "2025-03-01 10:30" in texts["zh-CN"]
    assert "AV-ABCDEFGHIJKL" in texts["en"] and "broadband installation" in texts["en"]
    assert "2025-03-01 10:30 (UTC+8)" in texts["en"]


# --- notification ---------------------------------------------------------------------------


def test_sms_text_in_chinese_names_service_and_voucher() -> None:
    text = activation_message("zh-CN", "broadband_install", "AV-ABCDEFGHIJKL")
    assert "宽带新装" in text and "业务开通凭证号：AV-ABCDEFGHIJKL" in text  # noqa: RUF001


def test_sms_text_in_english_names_service_and_voucher() -> None:
    text = activation_message("en", "iptv", "AV-ABCDEFGHIJKL")
    assert text.startswith("[Orderline] Your IPTV service is now active.")
    assert "AV-ABCDEFGHIJKL" in text


@pytest.mark.parametrize(
    ("given_locale", "expected"),
    [("en", "en"), ("en-US", "en"), ("en_GB", "en"), ("zh-CN", "zh-CN"), ("zh", "zh-CN"),
     ("fr", "zh-CN"), ("", "zh-CN"), (None, "zh-CN")],
)  # fmt: skip
def test_locale_defaults_to_chinese(given_locale: str | None, expected: str) -> None:
    assert normalize_locale(given_locale) == expected


def test_voice_is_tried_after_five_sms_failures_then_channels_alternate() -> None:
    channels = [channel_for(n) for n in range(9)]
    assert channels == [Channel.SMS] * 5 + [
        Channel.VOICE,
        Channel.SMS,
        Channel.VOICE,
        Channel.SMS,
    ]


# --- the business catalogue ---------------------------------------------------------------------


def test_every_configuration_template_of_the_catalogue_is_there() -> None:
    for business in load_catalogue():
        assert load_catalogue().template(config_template(business.key)), business.key


def test_business_names_in_customer_texts_come_from_the_catalogue() -> None:
    for business in load_catalogue():
        assert business_label(business.key, "zh-CN") == business.names["zh-CN"]
        assert business_label(business.key, "en").lower() == business.names["en"].lower()
    assert business_label("satellite_uplink", "en") == "satellite uplink"
