"""The error tree of governed tools. The server maps each to an MCP result in one place.

    GovernanceError                 a governed refusal with rule_id, reason, remediation
    ├── PolicyDenied                a policy verdict was deny
    ├── InvalidInput                arguments or documents that fail validation
    ├── IntegrityError              hashes, CAS contents or recorded provenance do not match
    ├── NotFound                    a named dataset, run, approval ... does not exist
    ├── SandboxFailed               the training child failed, was killed or timed out
    └── GitRefused                  a git ref or operation that is refused
"""

from __future__ import annotations

from tools.redact import redact_text


class GovernanceError(Exception):
    """A refusal an agent can act on. Never carries secrets or raw data: credentials in any URI
    of its text (a tracking URI, a git remote) are redacted here, before it reaches a result or a log."""

    rule_id = "governance"

    def __init__(self, reason: str, remediation: str = "", *, rule_id: str | None = None) -> None:
        reason, remediation = redact_text(reason), redact_text(remediation)
        super().__init__(reason)
        self.reason = reason
        self.remediation = remediation
        if rule_id is not None:
            self.rule_id = rule_id

    def as_dict(self) -> dict[str, str]:
        return {"rule_id": self.rule_id, "reason": self.reason, "remediation": self.remediation}


class PolicyDenied(GovernanceError):
    rule_id = "policy.denied"


class InvalidInput(GovernanceError):
    rule_id = "input.invalid"


class IntegrityError(GovernanceError):
    rule_id = "integrity.mismatch"


class NotFound(GovernanceError):
    rule_id = "input.not_found"


class SandboxFailed(GovernanceError):
    rule_id = "sandbox.failed"


class GitRefused(GovernanceError):
    rule_id = "git.refused"
