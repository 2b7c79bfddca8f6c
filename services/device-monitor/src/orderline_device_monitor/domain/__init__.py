"""Pure device-health rules: thresholds, evaluation, state and changes (no I/O)."""
