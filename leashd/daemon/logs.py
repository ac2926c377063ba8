"""Logs: structlog into the standard library's handlers, readable on the console and JSON in a
rotating file under LOG_DIR. The audit log is separate and never rotated away."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import structlog

_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(
    level: str,
    log_dir: Path | None,
    *,
    console: bool,
    max_bytes: int = 10_000_000,
    backups: int = 5,
    console_level: str | None = None,
) -> Path | None:
    """Set up logging once for the process; returns the log file's path, if any."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(level)
    path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / "leashd.log"
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        file_handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=_SHARED,
            )
        )
        root.addHandler(file_handler)
    if console:
        stream = logging.StreamHandler()
        stream.setLevel(console_level or level)
        stream.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.dev.ConsoleRenderer(colors=False),
                ],
                foreign_pre_chain=_SHARED,
            )
        )
        root.addHandler(stream)
    # quiet libraries that log every request at INFO
    for noisy in ("httpx", "httpcore", "telegram", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return path
