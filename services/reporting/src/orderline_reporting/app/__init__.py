"""Reporting's use cases: projecting events, answering reports."""
