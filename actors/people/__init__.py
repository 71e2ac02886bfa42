"""The people actor (``actor.py``) and its parts: roles and tokens, hats, rule changes
waiting for a second person, and the state they share (``ledger.py``)."""
