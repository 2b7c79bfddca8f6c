from orderline_archive.adapters.tables import metadata
from orderline_runtime.migrations import run_env

run_env(metadata)
