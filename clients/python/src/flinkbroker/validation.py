"""A script's validation (ValidateSql) as plain Python values."""

from __future__ import annotations

from dataclasses import dataclass

from .v1 import broker_pb2 as pb


@dataclass(frozen=True)
class StatementCheck:
    """How one statement was found. `verdict` is VALID, INVALID or NOT_CHECKED; `line` and
    `column` say where it starts in the script, `error_line` and `error_column` where the
    planner's error is (None when it named no position); `plan` is EXPLAIN's output for a
    query, INSERT or statement set; `note` says why a statement was not checked."""

    index: int
    sql: str
    kind: str
    verdict: str
    line: int
    column: int
    error: str
    error_line: int | None
    error_column: int | None
    plan: str
    note: str

    @classmethod
    def from_proto(cls, message: pb.StatementValidation) -> StatementCheck:
        has_error = message.HasField("error_start")
        return cls(
            index=message.index,
            sql=message.sql,
            kind=message.kind,
            verdict=pb.StatementValidation.Verdict.Name(message.verdict).removeprefix("VERDICT_"),
            line=message.start.line,
            column=message.start.column,
            error=message.error,
            error_line=message.error_start.line if has_error else None,
            error_column=message.error_start.column if has_error else None,
            plan=message.plan,
            note=message.note,
        )


@dataclass(frozen=True)
class Validation:
    """A script's validation: `valid` when no statement is invalid."""

    valid: bool
    statements: list[StatementCheck]

    @classmethod
    def from_proto(cls, message: pb.ValidateSqlResponse) -> Validation:
        return cls(
            valid=message.valid,
            statements=[StatementCheck.from_proto(s) for s in message.statements],
        )
