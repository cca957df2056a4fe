"""structlog set-up: JSON lines in production, readable lines on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

# Added to every event, ours and the libraries': when it happened and how serious it is.
_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _LibraryHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler that renders standard-library records (aioapns, asyncpg, aiohttp,
    asyncio, Python warnings) as structlog events; configure() replaces only its own."""


def configure(fmt: str = "auto", level: str = "info") -> None:
    """Configure structlog, and route the standard library's logging through it, so that
    every line is JSON in JSON mode (libraries included) and readable on a terminal."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    # Our own events take the direct path (no stdlib record per line on the hot path).
    structlog.configure(
        processors=[*_SHARED, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (print writes the newline apart): worker processes share stderr.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = _LibraryHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LibraryHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries are chatty at INFO (aioapns logs every connection): warnings and worse only.
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # asyncpg's InterfaceWarning and the like, as log events


def describe(exc: BaseException) -> str:
    """An exception as a log or reason text: its type, and its message when it has one
    (str() of a TimeoutError is empty, which made log lines say `"error": ""`)."""
    detail = str(exc)
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name
