"""What both simulators do the same way: settings, logs, errors, serving."""
