"""Orderline archive service."""
