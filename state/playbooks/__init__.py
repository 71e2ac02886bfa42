"""The playbooks actor's own record (:mod:`state.playbooks.ledger_file`)."""
