"""Orderline intake service."""
