// Builders for hand-made histories in the checker tests: one call per operation, times in ms.
import type { Operation } from '../../chaos/history.js';

let seq = 0;

export interface OpExtra {
  readonly process?: number;
  readonly revision?: number;
  readonly error?: string;
  readonly requestId?: string;
  readonly node?: string;
}

/** An operation invoked at `from` and completed at `to` (info: never completes). */
export function op(
  f: string,
  args: unknown,
  from: number,
  to: number,
  outcome: Operation['outcome'] = 'ok',
  result?: unknown,
  extra: OpExtra = {},
): Operation {
  seq++;
  return {
    process: extra.process ?? seq,
    f,
    args,
    requestId: extra.requestId ?? `r${seq}`,
    ...(extra.node === undefined ? {} : { node: extra.node }),
    invokeMs: from,
    completeMs: outcome === 'info' ? Number.POSITIVE_INFINITY : to,
    outcome,
    result,
    ...(extra.revision === undefined ? {} : { revision: extra.revision }),
    ...(extra.error === undefined ? {} : { error: extra.error }),
  };
}

export const write = (key: string, value: string, from: number, to: number, outcome: Operation['outcome'] = 'ok', revision?: number): Operation =>
  op('write', { key, value }, from, to, outcome, outcome === 'ok' ? { revision: revision ?? 0 } : undefined, revision === undefined ? {} : { revision });

export const read = (key: string, value: string | null, from: number, to: number, revision?: number, modRevision = 0): Operation =>
  op('read', { key }, from, to, 'ok', { value, modRevision }, revision === undefined ? {} : { revision });

export const cas = (
  key: string,
  expect: string | null,
  value: string,
  from: number,
  to: number,
  outcome: Operation['outcome'],
  succeeded?: boolean,
  revision?: number,
): Operation =>
  op('cas', { key, expect, value }, from, to, outcome, succeeded === undefined ? undefined : { succeeded, revision: revision ?? 0 }, revision === undefined ? {} : { revision });

export const del = (key: string, from: number, to: number, outcome: Operation['outcome'] = 'ok', deleted?: number, revision?: number): Operation =>
  op('delete', { key }, from, to, outcome, deleted === undefined ? undefined : { deleted, revision: revision ?? 0 }, revision === undefined ? {} : { revision });

export function properties(result: { anomalies: readonly { property: string }[] }): string[] {
  return result.anomalies.map((a) => a.property);
}
