"""The limits that tell a good device from an abnormal one, per health category.

The one place device-monitor keeps them. The fleet simulator applies the same limits
(simulators/src/orderline_simulators/fleet/telemetry.py), so a fault it injects in one category
is seen here as exactly that category.

A value is abnormal when it is strictly above its maximum (``>``); a flag is abnormal when false.
"""

from __future__ import annotations

NOISE_DB_MAX = 70.0
"""Mechanical: acoustic noise next to the device, dB(A)."""

VIBRATION_MM_S_MAX = 4.5
"""Mechanical: vibration velocity, mm/s RMS (ISO 10816 'unsatisfactory' for small machines).

Aligned with the fleet simulator (4.5), which injects vibration faults from 6 mm/s up; a limit of
10 would leave part of those faults unseen. See docs/health-evaluation.md of this service."""

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
