"""The verification actor (``actor.py``) and its parts: one module per handshake kind,
the state they share (``ledger.py``), the sweeps on start and when re-verification is due."""
