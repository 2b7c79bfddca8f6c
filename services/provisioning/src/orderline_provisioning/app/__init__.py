"""Use cases: accepting approved orders and running their jobs step by step."""
