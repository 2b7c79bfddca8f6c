"""Shared runtime for Orderline services."""
