"""The audit trail (审计日志): every API call and web action — allowed, denied or failed — every status change,
exchange row and verification, kept tamper-evident for at least three years (第二十三条, 规范§七(二)).

- :mod:`~certstore.audit.events` — the event, its canonical encoding and entry hash (SM3);
- :mod:`~certstore.audit.chain` — appending under the chain-head lock: one total order, hash chain + Merkle tree,
  signed checkpoints when due; :func:`append_in_transaction` for mutations (write-ahead in their transaction);
- :mod:`~certstore.audit.trail` — the API's write path: bounded queue, fsynced local spool, batched appends;
- :mod:`~certstore.audit.merkle`, :mod:`~certstore.audit.tree`, :mod:`~certstore.audit.checkpoints` — RFC 6962
  tree with SM3, proofs, SM2-signed checkpoints;
- :mod:`~certstore.audit.verify` — ``certstore audit verify``; :mod:`~certstore.audit.query` — the auditor's
  queries, exports (verifiable offline) and summary; :mod:`~certstore.audit.archive` — monthly archive to the
  Object Lock bucket; :mod:`~certstore.audit.partitions` — retention, partitions, database grants.

Holder ID numbers never enter the log: only their keyed reference (``holder_digest``). Design and guarantees:
``docs/audit.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from certstore.audit.chain import (
        AppendResult,
        AuditSink,
        CheckpointPolicy,
        DirectSink,
        append_events,
        append_in_transaction,
        chain_pending,
        make_checkpoint,
        record_event,
    )
    from certstore.audit.checkpoints import Checkpoint, CheckpointKey
    from certstore.audit.events import AuditEntry, AuditEvent, Outcome
    from certstore.audit.query import AuditQuery, EventPage, query_entries, query_events
    from certstore.audit.trail import AuditTrail
    from certstore.audit.verify import Finding, VerificationResult, verify_log

#: Each name of this package → the module that defines it. Imported on first use (PEP 562), so that importing
#: one name (``Outcome`` for a use case, ``DirectSink`` for the application) does not load the writer, the
#: queries and the verifier too: the command line's start-up (``python -m bench cli``).
_EXPORTS = {
    "AppendResult": "chain",
    "AuditSink": "chain",
    "CheckpointPolicy": "chain",
    "DirectSink": "chain",
    "append_events": "chain",
    "append_in_transaction": "chain",
    "chain_pending": "chain",
    "make_checkpoint": "chain",
    "record_event": "chain",
    "Checkpoint": "checkpoints",
    "CheckpointKey": "checkpoints",
    "AuditEntry": "events",
    "AuditEvent": "events",
    "Outcome": "events",
    "AuditQuery": "query",
    "EventPage": "query",
    "query_entries": "query",
    "query_events": "query",
    "AuditTrail": "trail",
    "Finding": "verify",
    "VerificationResult": "verify",
    "verify_log": "verify",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "AppendResult",
    "AuditEntry",
    "AuditEvent",
    "AuditQuery",
    "AuditSink",
    "AuditTrail",
    "Checkpoint",
    "CheckpointKey",
    "CheckpointPolicy",
    "DirectSink",
    "EventPage",
    "Finding",
    "Outcome",
    "VerificationResult",
    "append_events",
    "append_in_transaction",
    "chain_pending",
    "make_checkpoint",
    "query_entries",
    "query_events",
    "record_event",
    "verify_log",
]
