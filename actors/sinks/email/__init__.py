"""The email sink: one message per event (plain text + HTML) over SMTP in a worker thread,
and the magic-link handshake that binds a recipient address for 12 months."""
