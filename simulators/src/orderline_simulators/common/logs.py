"""Structured JSON logs to stderr (stdout is kept for the one `ready on` line)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def configure_logging(level: str, *, service: str) -> None:
    """JSON lines on stderr, one object per event, with the service name and a UTC timestamp."""
    numeric = logging.getLevelNamesMapping()[level.upper()]

    def add_service(_: Any, __: str, event: structlog.typing.EventDict) -> Any:
        event.setdefault("service", service)
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_service,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # gRPC's own (stdlib) warnings also go to stderr.
    logging.basicConfig(stream=sys.stderr, level=max(numeric, logging.WARNING))


def get_logger(name: str) -> Any:
    """A structlog logger bound to a component name."""
    return structlog.get_logger(component=name)
