"""The orderline command line."""
