"""Reporting's gRPC servicers (thin)."""
