"""The PagerDuty sink: one Events API v2 event (trigger / acknowledge / resolve, keyed by a
stable tenant-scoped ``dedup_key``) per delivery over httpx, and the OAuth 2.0
authorization-code-with-PKCE handshake (RFC 7636, S256) that proves the tenant owns the
PagerDuty account."""
