"""Orderline provisioning service."""
