"""Simulators: device fleet and notification gateway."""
