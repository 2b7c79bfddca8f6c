"""The archive's use cases: sealing a completed order's dossier, reading and verifying the chain."""
