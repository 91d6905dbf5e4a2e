"""Human feedback: PII redaction, the feedback store (SQLite/PostgreSQL) and the preference-pair export."""

from serving.feedback.pii import contains_pii, find_pii, redact

__all__ = ["contains_pii", "find_pii", "redact"]
