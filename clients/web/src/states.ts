// Job and statement states by their short names.

import { JobKind, JobState, StatementState } from "./gen/flinkbroker/v1/broker_pb";

export const JOB_STATES: JobState[] = [
  JobState.PENDING,
  JobState.SUBMITTING,
  JobState.RUNNING,
  JobState.CANCELING,
  JobState.FINISHED,
  JobState.FAILED,
  JobState.CANCELED,
];

export function jobState(state: JobState): string {
  return JobState[state] ?? "UNSPECIFIED";
}

export function statementState(state: StatementState): string {
  return StatementState[state] ?? "UNSPECIFIED";
}

export function jobKind(kind: JobKind): string {
  return kind === JobKind.SQL ? "SQL" : kind === JobKind.PYTHON ? "Python" : "—";
}

export function isTerminal(state: JobState): boolean {
  return state === JobState.FINISHED || state === JobState.FAILED || state === JobState.CANCELED;
}

/** A badge naming a state; its class colours it. */
export function badgeClass(name: string): string {
  return `badge state-${name.toLowerCase()}`;
}
