"""Adapters: the database (tables, repository) and the clients of the peers we call."""
