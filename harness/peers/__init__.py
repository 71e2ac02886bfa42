"""Local peers the drill harness starts on 127.0.0.1 and watches: a Slack Web API, a
Standard Webhooks receiver, an SMTP server, PagerDuty's Events API, an OAuth provider
and a DNS server. They ship with the package (``eyetok drill run`` starts them with no
test tree around); ``tests/peers/`` re-exports them for the test suite."""
