"""The audit trail (审计日志): every API operation — allowed, denied or failed — appended as one event.

Events name the principal, the action, the resource, the matter (办件) and, for holder look-ups, only the keyed
digest of the holder's ID (never the number). This package is the one home of audit records; its storage is the
``audit_events`` table, append-only by construction (nothing here updates or deletes).
"""

from certstore.audit.events import AuditEvent, Outcome, query_events, record_event

__all__ = ["AuditEvent", "Outcome", "query_events", "record_event"]
