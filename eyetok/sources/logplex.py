"""The ``application/logplex-1`` framing of a Heroku HTTPS log drain body.

Logplex POSTs a batch of RFC 5424 syslog messages, each framed by octet counting
(RFC 6587 section 3.4.1): ``<length> <message>``, where ``<length>`` is the message's size
in bytes as ASCII digits and exactly that many bytes follow the single space. A message
may hold spaces and newlines (Heroku ends each with ``\\n``, counted in the length), so
the length prefix, never a newline, says where a frame ends::

    83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\\n

:func:`frames` walks a body and returns the well-framed messages and the frames it could
not read, each named by the byte offset where it starts. A frame is bad when its length
prefix is not digits followed by one space, when the body ends before its declared
length, or when its message does not start as syslog does (``<PRI>VERSION``). One bad
frame never costs the good ones: after a bad frame the walk resynchronises at the next
offset that reads as a frame header (``<digits> <PRI>VERSION ``) whose declared length
ends exactly at the end of the body or at another frame header, and carries on from
there (a frame whose length was wrong may have swallowed the start of its neighbour:
that neighbour is reported bad, the rest are read).

The walk does no syslog parsing beyond the header check: the caller decides which frames
are worth reading (most drain lines are not errors, and are skipped on a substring test).
"""

from __future__ import annotations

import re

import msgspec

__all__ = ["BadFrame", "Framed", "frames"]

MAX_LENGTH_DIGITS = 7  # a 1 MiB body cannot hold a frame of 10**7 bytes
_HEADER = re.compile(rb"<\d{1,3}>\d{1,2} ")
# where a frame could start again after a bad one: a length, a space, a syslog header
_RESYNC = re.compile(rb"(?<![0-9])([0-9]{1,7}) <\d{1,3}>\d{1,2} ")


class BadFrame(msgspec.Struct, frozen=True, kw_only=True):
    """A frame the walk could not read: the byte offset where it starts, and why."""

    offset: int
    reason: str


class Framed(msgspec.Struct, frozen=True, kw_only=True):
    """A body's frames: the good messages (with the offset of their frame) and the bad."""

    messages: tuple[tuple[int, bytes], ...]
    bad: tuple[BadFrame, ...]


def frames(body: bytes) -> Framed:
    """Split an ``application/logplex-1`` body into its syslog messages."""
    messages: list[tuple[int, bytes]] = []
    bad: list[BadFrame] = []
    size = len(body)
    at = 0
    while at < size:
        space = body.find(b" ", at, at + MAX_LENGTH_DIGITS + 1)
        digits = body[at:space] if space > at else b""
        if not digits.isdigit():
            shown = body[at : at + 12]
            problem = f"expected a length prefix (digits and a space), found {shown!r}"
        else:
            length = int(digits)
            start = space + 1
            end = start + length
            if length == 0:
                problem = "a frame of length 0"
            elif end > size:
                problem = (
                    f"truncated: the frame declares {length} bytes, the body holds "
                    f"{size - start} after its prefix"
                )
            elif _HEADER.match(body, start) is None:
                shown = body[start : start + 12]
                problem = f"the message does not start with a syslog <PRI>VERSION: {shown!r}"
            else:
                messages.append((at, body[start:end]))
                at = end
                continue
        bad.append(BadFrame(offset=at, reason=problem))
        at = _resync(body, at + 1)
    return Framed(messages=tuple(messages), bad=tuple(bad))


def _resync(body: bytes, after: int) -> int:
    """The next offset at or past ``after`` that reads as a frame header whose declared
    length ends at the body's end or at another header; the body's end when none does."""
    for found in _RESYNC.finditer(body, after):
        end = found.start(1) + len(found[1]) + 1 + int(found[1])
        if end == len(body) or (end < len(body) and _RESYNC.match(body, end) is not None):
            return found.start(1)
    return len(body)
