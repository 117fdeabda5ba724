// Transactions: if every compare holds, run the success ops, else the failure ops; all in one revision.
// Compares follow etcd: a missing key has version, createRevision, modRevision and lease 0, and a compare on
// the value of a missing key is false whatever the op (there is no value to compare). Values compare as bytes.
// Ops run in order and each sees the writes of the ones before it (see ApplyContext).
import { unreachable } from '../util/assert.js';
import type { Compare, CompareOp, KV, TxnCommand, TxnOp, TxnOpResult, TxnResult } from './commands.js';
import type { ApplyContext } from './apply-context.js';
import { compareBytes, utf8 } from './keys.js';
import { keyRange, shapeRange } from './range.js';

function holds(op: CompareOp, order: number): boolean {
  switch (op) {
    case '==':
      return order === 0;
    case '!=':
      return order !== 0;
    case '<':
      return order < 0;
    case '>':
      return order > 0;
    default:
      return unreachable(op, 'compare op');
  }
}

export function evaluateCompare(compare: Compare, kv: KV | null): boolean {
  if (compare.target === 'value') {
    if (kv === null) return false;
    return holds(compare.op, compareBytes(utf8(kv.value), utf8(compare.value)));
  }
  const actual = kv === null ? 0 : kv[compare.target];
  return holds(compare.op, Math.sign(actual - compare.value));
}

async function runOp(op: TxnOp, ctx: ApplyContext): Promise<TxnOpResult> {
  if ('put' in op) {
    await ctx.put(op.put.key, op.put.value, op.put.lease ?? 0);
    return { put: { revision: ctx.revision } };
  }
  if ('delete' in op) {
    const deleted = await ctx.deleteRange(keyRange(op.delete.key, op.delete.prefix ?? false));
    return { delete: { deleted: deleted.length } };
  }
  const kvs = await ctx.range(keyRange(op.get.key, op.get.prefix ?? false));
  const shape = { limit: op.get.limit ?? 0, keysOnly: false, countOnly: false, sort: 'key', order: 'asc' } as const;
  return { get: shapeRange(kvs, shape) };
}

/** Every write op of both branches is checked before anything runs, so a refusal does not depend on the compares. */
function checkWrites(cmd: TxnCommand, ctx: ApplyContext): void {
  for (const op of [...cmd.success, ...cmd.failure]) {
    if ('put' in op) ctx.checkUserWrite(op.put.key, false);
    else if ('delete' in op) ctx.checkUserWrite(op.delete.key, op.delete.prefix ?? false);
  }
}

export async function executeTxn(cmd: TxnCommand, ctx: ApplyContext): Promise<TxnResult> {
  checkWrites(cmd, ctx);
  let succeeded = true;
  for (const compare of cmd.compare) {
    if (!evaluateCompare(compare, await ctx.get(compare.key))) {
      succeeded = false;
      break;
    }
  }
  const results: TxnOpResult[] = [];
  for (const op of succeeded ? cmd.success : cmd.failure) results.push(await runOp(op, ctx));
  return { succeeded, revision: ctx.resultRevision, results };
}
