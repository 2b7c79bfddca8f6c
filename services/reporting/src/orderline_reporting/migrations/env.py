from orderline_reporting.adapters.tables import metadata
from orderline_runtime.migrations import run_env

run_env(metadata)
