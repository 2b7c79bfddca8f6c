"""Labels that reach a manager (report exports), in every language we write: en and zh-CN.

State names are TMF641's; business type names come from the business catalogue, the one file
intake and provisioning read too. An unknown key is shown as itself rather than hidden.
"""

from __future__ import annotations

from collections.abc import Mapping

from orderline_catalogue import BUSINESS_TYPE_NAMES
from orderline_reporting.domain import states as s

LOCALES = ("en", "zh-CN")
DEFAULT_LOCALE = "en"

STATE_LABELS: Mapping[str, Mapping[str, str]] = {
    s.ACKNOWLEDGED: {"en": "Acknowledged", "zh-CN": "已受理"},
    s.PENDING: {"en": "Pending information", "zh-CN": "待补充资料"},
    s.IN_PROGRESS: {"en": "In progress", "zh-CN": "处理中"},
    s.HELD: {"en": "Held", "zh-CN": "已挂起"},
    s.ASSESSING_CANCELLATION: {"en": "Assessing cancellation", "zh-CN": "撤单评估中"},
    s.PENDING_CANCELLATION: {"en": "Pending cancellation", "zh-CN": "待撤单"},
    s.COMPLETED: {"en": "Completed", "zh-CN": "已完成"},
    s.REJECTED: {"en": "Rejected", "zh-CN": "已驳回"},
    s.FAILED: {"en": "Failed", "zh-CN": "失败"},
    s.CANCELLED: {"en": "Cancelled", "zh-CN": "已撤单"},
}

# Read from the business catalogue (orderline_catalogue) when first used.
BUSINESS_TYPE_LABELS: Mapping[str, Mapping[str, str]] = BUSINESS_TYPE_NAMES


def _label(table: Mapping[str, Mapping[str, str]], key: str, locale: str) -> str:
    names = table.get(key)
    if names is None:
        return key
    return names.get(locale) or names[DEFAULT_LOCALE]


def state_label(state: str, locale: str = DEFAULT_LOCALE) -> str:
    """completed -> "Completed" (en) or "已完成" (zh-CN)."""
    return _label(STATE_LABELS, state, locale)


def business_type_label(business_type: str, locale: str = DEFAULT_LOCALE) -> str:
    """broadband_install -> "Broadband installation" (en) or "宽带新装" (zh-CN)."""
    return _label(BUSINESS_TYPE_LABELS, business_type, locale)


# --- report labels (docs/reporting.md) -------------------------------------------------------
# The business catalogue names business types only; the rest of a report's words are here.

# A stage is named by the milestone that ends it (it starts at the previous milestone reached,
# or at creation); `end_to_end` runs from creation to completion.
STAGE_LABELS: Mapping[str, Mapping[str, str]] = {
    "review_approved": {"en": "Review", "zh-CN": "审核"},
    "prechecks_passed": {"en": "Pre-checks", "zh-CN": "作业前检查"},
    "device_configured": {"en": "Device configuration", "zh-CN": "设备配置"},
    "tests_passed": {"en": "Testing", "zh-CN": "测试"},
    "service_activated": {"en": "Activation", "zh-CN": "业务开通"},
    "voucher_issued": {"en": "Voucher", "zh-CN": "开通凭证"},
    "customer_notified": {"en": "Customer notification", "zh-CN": "通知客户"},
    "dossier_archived": {"en": "Archiving", "zh-CN": "归档"},
    "end_to_end": {"en": "Creation to completion", "zh-CN": "受理至竣工"},
}

MILESTONE_LABELS: Mapping[str, Mapping[str, str]] = {
    "review_approved": {"en": "Review approved", "zh-CN": "审核通过"},
    "prechecks_passed": {"en": "Pre-checks passed", "zh-CN": "作业前检查通过"},
    "device_configured": {"en": "Device configured", "zh-CN": "设备已配置"},
    "tests_passed": {"en": "Tests passed", "zh-CN": "测试通过"},
    "service_activated": {"en": "Service activated", "zh-CN": "业务已开通"},
    "voucher_issued": {"en": "Voucher issued", "zh-CN": "凭证已签发"},
    "customer_notified": {"en": "Customer notified", "zh-CN": "已通知客户"},
    "dossier_archived": {"en": "Dossier archived", "zh-CN": "档案已归档"},
}

CATEGORY_LABELS: Mapping[str, Mapping[str, str]] = {
    "mechanical": {"en": "Mechanical", "zh-CN": "机械"},
    "display": {"en": "Display", "zh-CN": "显示"},
    "input": {"en": "Input", "zh-CN": "输入"},
    "line": {"en": "Line", "zh-CN": "线路"},
    "resources": {"en": "Resources", "zh-CN": "系统资源"},
    "thermal": {"en": "Thermal", "zh-CN": "温度"},
    "safety": {"en": "Safety", "zh-CN": "安全防护"},
    "communication": {"en": "Communication lost", "zh-CN": "通信中断"},
    "unspecified": {"en": "Unspecified", "zh-CN": "未分类"},
}

OUTCOME_LABELS: Mapping[str, Mapping[str, str]] = {
    "satisfied": {"en": "Satisfied", "zh-CN": "满意"},
    "problem_reported": {"en": "Problem reported", "zh-CN": "反映问题"},
    "not_reached": {"en": "Not reached", "zh-CN": "未联系上"},
}

REASON_LABELS: Mapping[str, Mapping[str, str]] = {
    "DUPLICATE_ORDER": {"en": "Duplicate order", "zh-CN": "重复订单"},
    "IDENTITY_NOT_VERIFIED": {"en": "Identity not verified", "zh-CN": "身份未核实"},
    "DOCUMENT_INVALID": {"en": "Document invalid", "zh-CN": "证件资料无效"},
    "ADDRESS_NOT_SERVICEABLE": {"en": "Address not serviceable", "zh-CN": "地址不具备装机条件"},
    "DEVICE_NOT_SUPPORTED": {"en": "Device not supported", "zh-CN": "设备不支持"},
    "CUSTOMER_WITHDREW": {"en": "Customer withdrew", "zh-CN": "客户撤回"},
    "CREDIT_CHECK_FAILED": {"en": "Credit check failed", "zh-CN": "信用审核未通过"},
    "FRAUD_SUSPECTED": {"en": "Fraud suspected", "zh-CN": "疑似欺诈"},
    "OTHER": {"en": "Other", "zh-CN": "其他"},
    "INFORMATION_REQUIRED": {"en": "Information required", "zh-CN": "需补充资料"},
    "DOCUMENT_ILLEGIBLE": {"en": "Document illegible", "zh-CN": "证件不清晰"},
    "DOCUMENT_MISSING": {"en": "Document missing", "zh-CN": "缺少证件"},
    "DOCUMENTS_MISSING": {"en": "Documents missing", "zh-CN": "缺少证件"},
    "IDENTITY_MISMATCH": {"en": "Identity mismatch", "zh-CN": "身份信息不符"},
    "ADDRESS_UNCLEAR": {"en": "Address unclear", "zh-CN": "地址不明确"},
    "DEVICE_MODEL_UNCLEAR": {"en": "Device model unclear", "zh-CN": "设备型号不明确"},
    "DEVICE_MODEL_NOT_ALLOWED": {"en": "Device model not allowed", "zh-CN": "设备型号不允许"},
    "PASSPORT_IDENTITY": {"en": "Passport identity", "zh-CN": "护照身份需人工核实"},
    "POSSIBLE_DUPLICATE": {"en": "Possible duplicate", "zh-CN": "疑似重复订单"},
    "AMENDED": {"en": "Amended", "zh-CN": "订单已修改"},
    "DEVICE_ABNORMAL": {"en": "Device abnormal", "zh-CN": "设备异常"},
}

UNKNOWN_MODEL = "unknown"

# Everything else a report prints: titles, column headings, figure names.
TEXT: Mapping[str, Mapping[str, str]] = {
    "report_title": {"en": "Orderline management report", "zh-CN": "Orderline 经营管理报表"},
    "window": {"en": "Period", "zh-CN": "统计期间"},
    "generated": {"en": "Generated", "zh-CN": "生成时间"},
    "time_zone": {"en": "Time zone", "zh-CN": "时区"},
    "orders": {"en": "Orders by period, type and state", "zh-CN": "订单: 按期间、业务类型、状态"},
    "stages": {"en": "Stage lead times and SLA", "zh-CN": "环节时长与时限"},
    "reviews": {"en": "Review", "zh-CN": "审核"},
    "devices": {"en": "Device faults", "zh-CN": "设备故障"},
    "customers": {"en": "Customers and follow-up", "zh-CN": "客户满意度与回访"},
    "period": {"en": "Period", "zh-CN": "期间"},
    "business_type": {"en": "Business type", "zh-CN": "业务类型"},
    "state": {"en": "State", "zh-CN": "状态"},
    "count": {"en": "Orders", "zh-CN": "订单数"},
    "total_orders": {"en": "Orders created", "zh-CN": "新建订单"},
    "stage": {"en": "Stage", "zh-CN": "环节"},
    "samples": {"en": "Orders measured", "zh-CN": "样本订单数"},
    "p50": {"en": "p50", "zh-CN": "中位数 p50"},
    "p90": {"en": "p90", "zh-CN": "p90"},
    "p99": {"en": "p99", "zh-CN": "p99"},
    "slowest_stage": {"en": "Slowest stage (p90)", "zh-CN": "最慢环节 (p90)"},
    "milestone": {"en": "Milestone", "zh-CN": "里程碑"},
    "met": {"en": "On time", "zh-CN": "按时"},
    "late": {"en": "Reached late", "zh-CN": "超时达成"},
    "overdue": {"en": "Overdue (open)", "zh-CN": "已超时未达成"},
    "orders_in_jeopardy": {"en": "Orders in jeopardy", "zh-CN": "预警订单"},
    "sla_breaches": {"en": "SLA breaches", "zh-CN": "超时限次数"},
    "jobs_started": {"en": "Orders in provisioning", "zh-CN": "进入开通的订单"},
    "activation_rate": {"en": "Activation success rate", "zh-CN": "开通成功率"},
    "adjustment_rate": {"en": "Adjustment rate", "zh-CN": "调整率"},
    "fallout_rate": {"en": "Fallout rate", "zh-CN": "失败率"},
    "held_rate": {"en": "Held rate", "zh-CN": "挂起率"},
    "figure": {"en": "Figure", "zh-CN": "指标"},
    "value": {"en": "Value", "zh-CN": "数值"},
    "decided": {"en": "Orders decided", "zh-CN": "已审核订单"},
    "first_pass_rate": {"en": "First-pass review rate", "zh-CN": "一次审核通过率"},
    "approved": {"en": "Approved", "zh-CN": "通过"},
    "auto_approved": {"en": "Approved automatically", "zh-CN": "自动审核通过"},
    "rejected": {"en": "Rejected", "zh-CN": "驳回"},
    "queued": {"en": "Sent to the review queue", "zh-CN": "转人工审核"},
    "info_requested": {"en": "Information requested", "zh-CN": "要求补充资料"},
    "reason": {"en": "Reason", "zh-CN": "原因"},
    "rejection_reasons": {"en": "Rejection reasons", "zh-CN": "驳回原因"},
    "information_reasons": {"en": "Information request reasons", "zh-CN": "补充资料原因"},
    "queue_reasons": {"en": "Review queue reasons", "zh-CN": "转人工审核原因"},
    "model": {"en": "Device model", "zh-CN": "设备型号"},
    "category": {"en": "Category", "zh-CN": "故障类别"},
    "faults": {"en": "Faults", "zh-CN": "故障数"},
    "repaired": {"en": "Repaired", "zh-CN": "已修复"},
    "mttr": {"en": "Mean time to repair", "zh-CN": "平均修复时长"},
    "devices_affected": {"en": "Devices affected", "zh-CN": "涉及设备"},
    "follow_ups": {"en": "Follow-ups recorded", "zh-CN": "已回访"},
    "outcome": {"en": "Outcome", "zh-CN": "回访结果"},
    "satisfaction_rate": {
        "en": "Satisfaction (of customers reached)",
        "zh-CN": "满意率 (已联系客户)",
    },
    "reach_rate": {"en": "Customers reached", "zh-CN": "联系成功率"},
    "cases_opened": {"en": "Trouble cases opened", "zh-CN": "新开故障单"},
    "device_cases": {"en": "of which device problems", "zh-CN": "其中设备问题"},
    "cases_closed": {"en": "Trouble cases closed", "zh-CN": "已关闭故障单"},
    "mean_time_to_close": {"en": "Mean time to close", "zh-CN": "平均关单时长"},
    "feedback": {"en": "Feedback received", "zh-CN": "客户评价数"},
    "mean_score": {"en": "Mean feedback score", "zh-CN": "平均评分"},
    "confirmed": {"en": "Customer confirmations", "zh-CN": "客户确认数"},
    "no_source": {"en": "no source events yet", "zh-CN": "暂无数据来源事件"},
    "unknown_model": {"en": "model not reported", "zh-CN": "型号未上报"},
    "none": {"en": "none", "zh-CN": "无"},
    "cohort_note": {
        "en": "Orders, stages and review count orders created in the period; devices and "
        "customers count what happened in the period.",
        "zh-CN": "订单、环节与审核统计期间内新建的订单, 设备与客户统计期间内发生的事件。",
    },
}


def stage_label(stage: str, locale: str = DEFAULT_LOCALE) -> str:
    return _label(STAGE_LABELS, stage, locale)


def milestone_label(milestone: str, locale: str = DEFAULT_LOCALE) -> str:
    return _label(MILESTONE_LABELS, milestone, locale)


def category_label(category: str, locale: str = DEFAULT_LOCALE) -> str:
    return _label(CATEGORY_LABELS, category, locale)


def outcome_label(outcome: str, locale: str = DEFAULT_LOCALE) -> str:
    return _label(OUTCOME_LABELS, outcome, locale)


def reason_label(reason: str, locale: str = DEFAULT_LOCALE) -> str:
    return _label(REASON_LABELS, reason, locale)


def text(key: str, locale: str = DEFAULT_LOCALE) -> str:
    return _label(TEXT, key, locale)
