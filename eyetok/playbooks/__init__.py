"""Playbooks: what EyeTok may check and propose for an incident, as data.

- :mod:`eyetok.playbooks.config` — the ``playbooks:`` and ``integrations:`` YAML, typed
  actions (a tagged union on ``kind``), the registry and its load-time refusals;
- :mod:`eyetok.playbooks.kinds` — each kind's HTTP call (Heroku Platform API, Sentry API,
  ``http.check``, the signed generic ``http``), whether it is read-only, how it is shown
  in a post (never a credential) and what its answer means;
- :mod:`eyetok.playbooks.ledger` — proposals and recommendations as a fold over recorded
  events: who may approve, when a run may start, what a restart finds;
- :mod:`eyetok.escalation` — the one function every promotion goes through.
"""
