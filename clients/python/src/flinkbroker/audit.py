"""The audit trail as plain Python values, converted from the broker's protobuf messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from .jobs import _time
from .v1 import broker_pb2 as pb


class AuditAction(enum.Enum):
    """What an audited call did. `value` is the protobuf number; `name.lower()` is the
    broker's own spelling ("submit", "read_results", ...), which `parse` accepts too."""

    UNSPECIFIED = pb.AUDIT_ACTION_UNSPECIFIED
    # SubmitSql or SubmitPython.
    SUBMIT = pb.AUDIT_ACTION_SUBMIT
    # CancelJob.
    CANCEL = pb.AUDIT_ACTION_CANCEL
    # StreamOperationResults.
    READ_RESULTS = pb.AUDIT_ACTION_READ_RESULTS
    # A call of any method refused: UNAUTHENTICATED, PERMISSION_DENIED, or NOT_FOUND for
    # another tenant's job.
    DENIED = pb.AUDIT_ACTION_DENIED
    # TriggerSavepoint.
    SAVEPOINT = pb.AUDIT_ACTION_SAVEPOINT
    # UpgradeJob.
    UPGRADE = pb.AUDIT_ACTION_UPGRADE

    @classmethod
    def parse(cls, action: AuditAction | str) -> AuditAction:
        """The action itself, or the one a name spells ("submit", "READ_RESULTS", ...)."""
        if isinstance(action, AuditAction):
            return action
        try:
            return cls[action.strip().upper()]
        except KeyError:
            known = ", ".join(repr(a.name.lower()) for a in cls if a is not cls.UNSPECIFIED)
            raise ValueError(f"action: must be an AuditAction or one of {known}, not {action!r}") from None


@dataclass(frozen=True)
class AuditEvent:
    """One audited call. `outcome` is the gRPC status code name of the answer ("OK",
    "PERMISSION_DENIED", ...) and `detail` its message when it was not OK; `principal` and
    `tenant` are empty when the caller could not be identified, `job_id` and `request_id`
    when the call had none. `raw` is the broker's message."""

    id: int
    time: datetime | None
    principal: str
    tenant: str
    action: AuditAction
    method: str
    job_id: str
    request_id: str
    outcome: str
    detail: str
    raw: pb.AuditEvent = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, message: pb.AuditEvent) -> AuditEvent:
        return cls(
            id=message.id,
            time=_time(message.time, message.HasField("time")),
            principal=message.principal,
            tenant=message.tenant,
            action=AuditAction(message.action),
            method=message.method,
            job_id=message.job_id,
            request_id=message.request_id,
            outcome=message.outcome,
            detail=message.detail,
            raw=message,
        )

    @property
    def ok(self) -> bool:
        """Whether the call was answered OK."""
        return self.outcome == "OK"
