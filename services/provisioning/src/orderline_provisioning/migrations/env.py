from orderline_provisioning.adapters.tables import metadata
from orderline_runtime.migrations import run_env

run_env(metadata)
