"""The IdP-bound on-call rotation: the on-call group read over SCIM 2.0 (``scim``), the
PagerDuty schedule and users over its REST API (``pagerduty``), the difference between
them (``plan``), who may be on call (``roles``) and where it all is (``settings``)."""
