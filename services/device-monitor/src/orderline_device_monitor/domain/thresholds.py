"""The fleet simulator's limits between a good device and an abnormal one, per category.

The rules file (``device_rules.yaml``) is what device-monitor applies; these constants are the
contract it must meet: the default model's major thresholds equal them (a unit test checks
both against the simulator's reference evaluation, simulators/README.md, "Telemetry
thresholds"), so a fault injected there in one category is seen here as exactly that category.

A value is abnormal when it is strictly above its maximum (``>``); a flag is abnormal when false.
"""

from __future__ import annotations

NOISE_DB_MAX = 70.0
"""Mechanical: acoustic noise next to the device, dB(A)."""

VIBRATION_MM_S_MAX = 4.5
"""Mechanical: vibration velocity, mm/s RMS (ISO 10816 'unsatisfactory' for small machines).

4.5 as in the simulator's contract, not 10: it injects vibration faults from 6 mm/s up, which a
limit of 10 would partly miss (see this service's README)."""

KEY_LATENCY_MS_MAX = 500.0
"""Input: time from key press to response, ms."""

LINE_ERROR_RATE_MAX = 0.05
"""Line: share of errored frames (0..1). ``line_up`` false is abnormal too."""

CPU_PCT_MAX = 95.0
"""Resources: CPU use, %."""

MEMORY_PCT_MAX = 95.0
"""Resources: memory use, %."""

DISK_PCT_MAX = 95.0
"""Resources: storage use, %."""

TEMPERATURE_C_MAX = 75.0
"""Thermal: internal temperature, °C."""

# Display: ``display_ok`` false is abnormal. Safety: ``safety_ok`` false is abnormal.
