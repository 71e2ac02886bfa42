"""Local peers the drill harness starts on 127.0.0.1 and watches: a Slack Web API, a
Standard Webhooks receiver, an SMTP mailbox, PagerDuty's Events API, an OAuth provider,
a DNS server and the platform APIs a playbook calls. They ship with the package
(``eyetok drill run`` starts them with no test tree around); this is their one home, and
the test suite imports them from here. Peers only the tests need live in ``tests/peers/``."""
