"""Orderline device-monitor service."""
