"""Reporting's database: projection tables and their repository."""
