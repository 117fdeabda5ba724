// Small helpers shared by the checkers: reading the loosely typed op arguments and results of a recorded history,
// and building anomalies. Recorded values come from JSON, so every field is checked before use.
import type { Anomaly, Operation } from '../history.js';

export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A field of an object as a string, or undefined. */
export function str(value: unknown, field: string): string | undefined {
  if (!isObject(value)) return undefined;
  const v = value[field];
  return typeof v === 'string' ? v : undefined;
}

/** A field as string|null (null and absent both read as null: a register's "no value"). */
export function strOrNull(value: unknown, field: string): string | null {
  return str(value, field) ?? null;
}

export function num(value: unknown, field: string): number | undefined {
  if (!isObject(value)) return undefined;
  const v = value[field];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function bool(value: unknown, field: string): boolean | undefined {
  if (!isObject(value)) return undefined;
  const v = value[field];
  return typeof v === 'boolean' ? v : undefined;
}

export function arr(value: unknown, field: string): readonly unknown[] {
  if (!isObject(value)) return [];
  const v = value[field];
  return Array.isArray(v) ? v : [];
}

/** The revision of an ok operation: the completion's header revision, else the result's `revision` field. */
export function opRevision(op: Operation): number | undefined {
  return op.revision ?? num(op.result, 'revision');
}

export function anomaly(property: string, message: string, evidence: readonly unknown[]): Anomaly {
  return { property, message, evidence };
}

/** A one-line description of an operation for messages. */
export function describe(op: Operation): string {
  const done = Number.isFinite(op.completeMs) ? op.completeMs.toFixed(1) : '∞';
  return `${op.f} p${op.process} ${op.requestId} [${op.invokeMs.toFixed(1)}, ${done}] ${op.outcome}`;
}
