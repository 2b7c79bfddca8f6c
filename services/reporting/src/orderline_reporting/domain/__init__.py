"""Reporting's pure domain: order states, the projection rule, labels and report shapes."""
