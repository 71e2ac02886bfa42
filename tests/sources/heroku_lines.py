"""Heroku drain lines in the shapes Heroku documents, and logplex bodies built from them.

Router lines follow https://devcenter.heroku.com/articles/http-routing#heroku-router-log-format
and the error codes https://devcenter.heroku.com/articles/error-codes; a syslog message is
``<PRI>1 TIMESTAMP HOST APP PROCID MSGID MSG`` as Logplex writes it, and an
``application/logplex-1`` body octet-counts each message (RFC 6587).
"""

from __future__ import annotations

import itertools

TS = "2026-11-24T03:00:00.123456+00:00"
TOKEN = "d.73ea7440-270a-435a-a0ea-adf50b4e5f5a"


def router(code: str, desc: str, *, dyno: str = "web.1", status: int = 503) -> str:
    return (
        f'<158>1 {TS} host heroku router - at=error code={code} desc="{desc}" '
        f'method=POST path="/api/v1/orders/bulk" host=raxx-prod.herokuapp.com '
        f'request_id=2bd1bfa4-9b2c-4f43-8bde-2d7c1d3a3f1e fwd="203.0.113.7" dyno={dyno} '
        f"connect=1ms service=30000ms status={status} bytes=0 protocol=https\n"
    )


def h12(dyno: str = "web.1") -> str:
    return router("H12", "Request timeout", dyno=dyno)


def dyno(process: str, text: str, app: str = "heroku") -> str:
    return f"<45>1 {TS} host {app} {process} - {text}\n"


def r14(process: str = "web.1") -> str:
    return dyno(process, "Error R14 (Memory quota exceeded)")


def r15(process: str = "worker.2") -> str:
    return dyno(process, "Error R15 (Memory quota vastly exceeded)")


def crashed(process: str = "web.2") -> str:
    return dyno(process, "State changed from up to crashed")


def info(n: int = 0) -> str:
    """An ordinary router line: most of a drain."""
    return (
        f'<158>1 {TS} host heroku router - at=info method=GET path="/items/{n}" '
        f'host=raxx-prod.herokuapp.com request_id=r{n} fwd="203.0.113.7" dyno=web.1 '
        f"connect=0ms service={n % 90}ms status=200 bytes=1024 protocol=https\n"
    )


def app_line(n: int = 0) -> str:
    return dyno("web.1", f'{{"level":"info","msg":"order {n} saved"}}', app="app")


def frame(message: str) -> bytes:
    data = message.encode("utf-8")
    return str(len(data)).encode() + b" " + data


def body(*messages: str) -> bytes:
    return b"".join(frame(m) for m in messages)


def mixed(lines: int) -> list[str]:
    """``lines`` drain lines: mostly ordinary traffic, one H12 in a hundred."""
    kinds = itertools.cycle([info, app_line])
    return [h12() if n % 100 == 99 else next(kinds)(n) for n in range(lines)]
