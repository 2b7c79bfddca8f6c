"""Orderline reporting service."""
