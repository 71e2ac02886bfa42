"""The one guarded JSON decoder: every body EyeTok reads (hooks, the API, Slack's events,
drills, explain) goes through :func:`decode_json`, so no body can make a 500.

msgspec raises more than its ``DecodeError``: invalid UTF-8 inside a string is a
``UnicodeDecodeError``, nesting past the interpreter's stack a ``RecursionError``. Each
failure becomes a :class:`~eyetok.errors.MalformedPayloadError` (400) that starts with
what was being read and names the problem: the JSON path (wrong type, missing field,
unexpected value, a number out of range) or the byte (malformed JSON, invalid UTF-8, a
byte-order mark). An empty body says so. NaN and Infinity are not JSON and are refused
as malformed. :func:`check_content_type` refuses a body that says it is not JSON (415).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from eyetok.errors import MalformedPayloadError, UnsupportedMediaTypeError

T = TypeVar("T")

MAX_DEPTH = 32
"""How deeply an untyped body (:func:`decode_value`) may nest; no API body needs more."""

_BOM = b"\xef\xbb\xbf"
_AT_PATH = re.compile(r"^(?P<problem>.*?) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")
_AT_BYTE = re.compile(r"^JSON is malformed: (?P<what>.*) \(byte (?P<byte>\d+)\)$")
_JSON_TYPES = ("application/json", "text/json")


def decode_json(
    body: bytes,
    shape: Any,
    what: str,
    *,
    invalid: Callable[[str, str], str] | None = None,
) -> Any:
    """``body`` decoded as ``shape``; anything else raises :class:`MalformedPayloadError`
    starting with ``what``. ``invalid(what, msgspec_text)`` words a wrong shape (default:
    :func:`validation_message`)."""
    if not body or body.isspace():  # what strip() would empty, without copying the body
        raise MalformedPayloadError(f"{what}: the body is empty (expected JSON)")
    if body.startswith(_BOM):
        raise MalformedPayloadError(
            f"{what}: the body starts with a byte-order mark; send UTF-8 JSON without one"
        )
    if not body.isascii():  # ASCII is UTF-8; isascii() neither copies nor decodes
        try:  # msgspec checks only the strings it keeps, not those of fields it skips
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPayloadError(f"{what}: invalid UTF-8 at byte {exc.start}") from exc
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        raise MalformedPayloadError((invalid or validation_message)(what, str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise MalformedPayloadError(_decode_message(what, str(exc), body)) from exc
    except UnicodeDecodeError as exc:  # checked above; kept in case msgspec finds more
        raise MalformedPayloadError(f"{what}: invalid UTF-8 in a string") from exc
    except RecursionError as exc:
        raise MalformedPayloadError(f"{what}: the JSON is nested too deeply") from exc


def decode_value(body: bytes, what: str, *, max_depth: int = MAX_DEPTH) -> object:
    """``body`` as plain JSON values (dict, list, str, int, float, bool, None), at most
    ``max_depth`` containers deep, so that whatever converts it later cannot recurse
    past the stack."""
    value: object = decode_json(body, Any, what)
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise MalformedPayloadError(f"{what}: the JSON nests deeper than {max_depth} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return value


def check_content_type(content_type: str | None, what: str) -> None:
    """Raise :class:`UnsupportedMediaTypeError` when ``content_type`` says the body is not
    UTF-8 JSON. None (no header) is read as JSON: senders such as curl often omit it."""
    if content_type is None or not content_type.strip():
        return
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    structured = media.startswith("application/") and media.endswith("+json")
    if media not in _JSON_TYPES and not structured:
        raise UnsupportedMediaTypeError(f"{what}: Content-Type {media!r} is not application/json")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaTypeError(f"{what}: charset {charset!r} is not utf-8")


def validation_message(what: str, text: str) -> str:
    """A msgspec ValidationError's text as ``what: <problem> for <$.path>``."""
    match = _AT_PATH.match(text)
    problem, path = (match["problem"], match["path"]) if match else (text, "$")
    if missing := _MISSING.match(problem):
        return f"{what}: {path}.{missing['field']} is missing"
    if expected := _EXPECTED.match(problem):
        return f"{what}: expected {expected['want']} for {path}, got {expected['got']}"
    if enum := _ENUM.match(problem):
        return f"{what}: unexpected value {enum['value']} for {path}"
    return f"{what}: {problem[:1].lower()}{problem[1:]} for {path}"


def _decode_message(what: str, text: str, body: bytes) -> str:
    if at_byte := _AT_BYTE.match(text):
        return f"{what}: malformed JSON at byte {at_byte['byte']} ({at_byte['what']})"
    if text == "Input data was truncated":
        return f"{what}: malformed JSON at byte {len(body)} (the body ends early)"
    return f"{what}: malformed JSON ({text})"
