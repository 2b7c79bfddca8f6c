"""A device that lost the configuration the job applied before its activation (配置丢失): a
factory reset by the customer or a technician, a replaced unit, a restart that came back on
the factory configuration. Pure: the activate step asks the agent and applies the decision.

The activate step notices it two ways: before switching the service, GetDeviceInfo names a
configuration version other than the one the job applied (any drift, whatever the agent
allows); or the agent refuses the activation because the device is on its factory
configuration (`FAILED_PRECONDITION`, reason `NOT_CONFIGURED`: a reset between that read and
the activation).

The first time, the job goes back to its configure step: the configuration is applied again
under a new key (`<job>:configure:reconfigure<n>`: the agent's ledger survives a reset, so the
first key would only replay the first result and change nothing), and the tests run again
(new rounds, new keys) before the activation, because every test measures the configuration in
force: the adjustments the loop made were lost with it, a replaced unit may carry other
defects, and the voucher attests tests run on the version the service is activated on. A
device that loses it again is not reconfigured in a loop: the job is held for a person (the
fallout queue) as DEVICE_CONFIG_LOST, at its configure step, so a retry configures it afresh.
"""

from __future__ import annotations

import enum

# The agent's ErrorInfo reason for an activation refused on a factory configuration.
NOT_CONFIGURED = "NOT_CONFIGURED"
# How many times a job configures its device again by itself after the device lost its
# configuration; one loss more goes to a person.
MAX_RECONFIGURATIONS = 1


class Verdict(enum.Enum):
    # The device runs the job's configuration: activate.
    KEPT = "kept"
    # Lost: configure again, test again, then activate.
    RECONFIGURE = "reconfigure"
    # Lost again: a person looks (DEVICE_CONFIG_LOST).
    HOLD = "hold"


def kept(applied: int | None, found: int | None) -> bool:
    """Whether the device still runs the configuration the job applied. `applied` None: the
    job applied none (nothing to lose); `found` None: the agent does not say (nothing to go
    by: the activation's own answer decides)."""
    return applied is None or found is None or found == applied


def decide(losses_before: int, limit: int = MAX_RECONFIGURATIONS) -> Verdict:
    """The device lost the job's configuration; `losses_before`: how often it had before in
    this job."""
    return Verdict.RECONFIGURE if losses_before < limit else Verdict.HOLD


def reconfigure_suffix(losses: int) -> str:
    """Appended to the configure key after the `losses`-th loss (none before the first)."""
    return f":reconfigure{losses}" if losses else ""


def lost_detail(applied: int | None, found: int | None, why: str = "") -> str:
    """What the job shows and job_held carries, e.g. `the device runs configuration version 1
    (the factory configuration), not version 3 which the job applied`."""
    if found is None:
        what = "the device no longer runs the configuration the job applied"
    else:
        factory = " (the factory configuration)" if found == 1 else ""
        what = (
            f"the device runs configuration version {found}{factory}, not version {applied} "
            "which the job applied"
        )
    return f"{what}: {why}" if why else what


def held_detail(losses: int, detail: str) -> str:
    """The hold's detail after the device lost it `losses` times."""
    times = "twice" if losses == 2 else f"{losses} times"
    return (
        f"the device lost the job's configuration {times} before its activation (factory "
        f"reset, replaced unit?); the last time {detail}"
    )
