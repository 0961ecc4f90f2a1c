// Job, statement and upgrade states by their short names.

import {
  JobKind,
  JobState,
  StatementState,
  Upgrade_Kind,
  Upgrade_Step,
} from "./gen/flinkbroker/v1/broker_pb";

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

export function upgradeStep(step: Upgrade_Step): string {
  return Upgrade_Step[step] ?? "UNSPECIFIED";
}

export function upgradeKind(kind: Upgrade_Kind): string {
  return kind === Upgrade_Kind.UPGRADE ? "Upgrade" : kind === Upgrade_Kind.ROLLBACK ? "Rollback" : "—";
}

/** Whether the upgrade that made a revision is still stopping the previous one or starting it. */
export function upgradeInProgress(step: Upgrade_Step): boolean {
  return step === Upgrade_Step.STOPPING_PREVIOUS || step === Upgrade_Step.STARTING;
}

export function isTerminal(state: JobState): boolean {
  return state === JobState.FINISHED || state === JobState.FAILED || state === JobState.CANCELED;
}

/** A badge naming a state; its class colours it. */
export function badgeClass(name: string): string {
  return `badge state-${name.toLowerCase()}`;
}
