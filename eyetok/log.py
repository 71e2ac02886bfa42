"""Structured logs: one JSON object per line on stdout (``heroku logs --tail`` greps them).

EyeTok's own events go through structlog. The libraries' (hypercorn's error log, quart's
app logger, anything else on the standard library's ``logging``) go to the same stdout
through the same renderer, so they are one JSON line each too: ``actor`` is the logger's
name, ``event`` its message, and an exception's traceback is one string field,
``exception``, never lines of its own. Libraries log at warning and above only (httpx
would otherwise log every request).

EyeTok's own lines are rendered with msgspec (a line per signal is on the ingest hot path;
the standard library's encoder took a third more CPU per line). A value msgspec cannot
encode falls back to ``json.dumps`` with structlog's fallback (``__structlog__``, else
``repr``), so an odd field never costs a line.

Every line goes through one writer, :data:`LINES`. Outside ``eyetok run`` (and on any
thread but the event loop's) it writes each line as it comes, as ``print`` did. Under
``eyetok run`` the writer is also a trio instrument (:meth:`Lines.before_io_wait`): the
lines the event loop renders during one scheduler pass are written together, with one
``write()``, just before the loop next waits for I/O. (``print`` made two system calls a
line with ``PYTHONUNBUFFERED`` set, as the benches and Heroku's Python buildpack run us,
and gave up the GIL for each, to wait behind the DuckDB thread for it back: about 4 writes
per accepted webhook, now about 1.) So a line of the loop's is out at most one loop tick
after it was rendered, nothing else delays it, and a SIGKILL loses at most the lines of
the pass under way when it landed (at most ``MAX_PENDING``: a longer pass writes them 256
at a time). A line from another thread is written at once, after the loop's pending
lines, so every thread's lines keep their order and stdout keeps the order they were
rendered in. The pending lines are written when the loop ends (``after_run``) and again
in ``eyetok run``'s ``finally``, so a clean stop (SIGTERM), a crash and an interrupt all
leave nothing behind.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class UtcTimestamp:
    """``timestamp``: the time in UTC as ``2026-12-05T02:53:14.123456Z``, the text
    ``structlog.processors.TimeStamper(fmt="iso", utc=True)`` writes (no fraction when
    the microseconds are 0), with the date and time of day formatted once a second
    (that took about a third of a line's CPU, and a line per incident is on the hot path)."""

    __slots__ = ("_now_ns", "_second")

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        self._now_ns = now_ns
        self._second: tuple[int, str] = (-1, "")  # one tuple: threads log too

    def __call__(
        self, _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        second, micro = divmod(self._now_ns() // 1_000, 1_000_000)  # floored, as datetime.now
        cached = self._second
        if cached[0] != second:
            text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()
            cached = self._second = (second, text)
        event_dict["timestamp"] = f"{cached[1]}.{micro:06d}Z" if micro else f"{cached[1]}Z"
        return event_dict


_BOUND_CONTEXTVARS: dict[str, Any] | None = getattr(structlog.contextvars, "_CONTEXT_VARS", None)


def _merge_contextvars(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog's ``merge_contextvars``, skipped while nothing was ever bound with
    ``bind_contextvars`` (structlog keeps the variables it made in ``_CONTEXT_VARS``;
    copying the context to find none cost about a fifth of a line's CPU). Should a
    structlog release drop that table, every line merges as before."""
    if _BOUND_CONTEXTVARS is not None and not _BOUND_CONTEXTVARS:
        return event_dict
    return structlog.contextvars.merge_contextvars(logger, method, event_dict)


_SHARED: list[Any] = [
    _merge_contextvars,
    structlog.processors.add_log_level,
    UtcTimestamp(),
]


def _fallback(obj: Any) -> Any:
    """What a log field msgspec does not know becomes (structlog's own fallback)."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


_encode = msgspec.json.Encoder(enc_hook=_fallback).encode


def _render_json(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    """The event as one compact JSON object, keys in the order they were added."""
    try:
        return _encode(event_dict).decode()
    except (TypeError, ValueError, OverflowError):  # a key msgspec refuses, a huge int
        return json.dumps(event_dict, separators=(",", ":"), default=_fallback)


def _actor_from_logger_name(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    record = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("actor", record.name)
    return event_dict


class Lines:
    """Where log lines go: ``out``, else whatever ``sys.stdout`` is at the write (as
    ``print`` looks it up). The structlog logger every EyeTok logger wraps (``msg``,
    ``info``... each write one rendered line), and a trio instrument: while a loop runs
    with it (``trio.run(..., instruments=[LINES])``), the loop thread's lines wait in
    ``_pending`` for that pass's end, :meth:`before_io_wait`, and go out in one write.
    Bound on loss: a SIGKILL drops the lines of the one pass under way (at most
    ``MAX_PENDING``), nothing older."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()  # the pending list and the file, in render order
        self._pending: list[str] = []
        self._loop_thread: int | None = None  # the thread whose lines wait for the tick

    def msg(self, message: str) -> None:
        """One rendered line (without its newline)."""
        if threading.get_ident() == self._loop_thread:
            with self._lock:
                self._pending.append(message)
                if len(self._pending) < MAX_PENDING:
                    return
                message = "\n".join(self._pending)  # a long pass: bound memory and loss
                self._pending = []
                self._write(message + "\n")
            return
        with self._lock:
            pending = self._pending
            if pending:  # the loop's lines rendered before this one go first
                self._pending = []
                pending.append(message)
                message = "\n".join(pending)
            self._write(message + "\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = msg

    def flush(self) -> None:
        """Write the lines waiting for the loop's tick, now."""
        with self._lock:
            if self._pending:
                text = "\n".join(self._pending) + "\n"
                self._pending = []
                self._write(text)

    def _write(self, text: str) -> None:
        out = self._out or sys.stdout
        out.write(text)
        out.flush()

    # trio instrument hooks (duck-typed: trio.abc.Instrument would import trio here)

    def before_run(self) -> None:
        self._loop_thread = threading.get_ident()

    def before_io_wait(self, timeout: float) -> None:
        """The end of a scheduler pass: the lines it rendered, in one write."""
        if self._pending:
            try:
                self.flush()
            except BaseException:
                self._loop_thread = None  # trio drops a failing instrument: write as we go
                raise

    def after_run(self) -> None:
        self._loop_thread = None
        self.flush()


MAX_PENDING = 256
"""The most lines a pass keeps back: a pass that renders more writes every 256."""

LINES = Lines()


def _lines(*_: Any) -> Lines:
    return LINES


class _LinesHandler(logging.Handler):
    """The standard library's records, formatted, through the same writer (and order)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            LINES.msg(self.format(record))
        except Exception:
            self.handleError(record)


def configure(level: str = "info") -> None:
    """JSON lines on stdout at ``level``. The processor chain is replaced in place: a
    module-level logger bound before this call (``_log = log.get(...)`` at import) holds
    the configuration's list itself, so it renders JSON too instead of structlog's
    default console lines (and ``structlog.testing.capture_logs``, which also edits that
    list in place, still sees it)."""
    processors = structlog.get_config()["processors"]
    processors[:] = [*_SHARED, structlog.processors.format_exc_info, _render_json]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=_lines,
        cache_logger_on_first_use=False,
    )
    handler = _LinesHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, _actor_from_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(sort_keys=False),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(logging.WARNING, _LEVELS.get(level, logging.INFO)))


def get(actor: str, **fields: Any) -> Any:
    """A logger bound to an actor (or entry point) name."""
    return structlog.get_logger().bind(actor=actor, **fields)
