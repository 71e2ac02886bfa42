"""The console: server-rendered pages for the on-call at a desk or on a phone.

- ``/console``: the operator's dashboard (yesterday's notification stream, the anomaly
  journal, the verification log, drill receipts, this hour's budgets and suppressions);
- ``/console/incidents`` and ``/console/incidents/<id>``: the incident list and one
  incident's timeline, served only with ``FLAG_CONSOLE_INCIDENTS`` on;
- ``/console/login``: sign-in with the root token or a tenant token (a signed session
  cookie after that; every form carries a CSRF token).
"""
