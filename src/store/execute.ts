// The key-value commands (put, deleteRange, txn) and extension commands, run against one entry's ApplyContext.
// A refused command throws a KeelError (PRECONDITION_FAILED with the current kv, FENCE_REJECTED...); the store
// turns it into the entry's failure result and discards the context's writes.
import { unreachable } from '../util/assert.js';
import { KeelError } from '../util/errors.js';
import type { ApplyContext, CommandExtension } from './apply-context.js';
import type { Command, CompactCommand, DeleteRangeCommand, DeleteResult, KV, PutCommand, PutResult } from './commands.js';
import type { ApplyResult } from './commands.js';
import { keyRange } from './range.js';
import { executeTxn } from './txn.js';

function preconditionFailed(what: string, kv: KV | null): KeelError {
  return new KeelError('PRECONDITION_FAILED', `${what} does not match`, kv === null ? {} : { kv });
}

async function checkFence(cmd: PutCommand, ctx: ApplyContext): Promise<void> {
  if (cmd.fence === undefined) return;
  const { lock, token } = cmd.fence;
  const current = ctx.hooks.lockFence === undefined ? null : await ctx.hooks.lockFence(lock, ctx);
  if (current !== token) {
    throw new KeelError('FENCE_REJECTED', `fence token ${token} is not the current holder's of lock ${lock}`, {
      lock,
      token,
    });
  }
}

async function executePut(cmd: PutCommand, ctx: ApplyContext): Promise<PutResult> {
  ctx.checkUserWrite(cmd.key, false);
  await checkFence(cmd, ctx);
  if (cmd.ifModRevision !== undefined || cmd.ifVersion !== undefined) {
    const current = await ctx.get(cmd.key);
    if (cmd.ifModRevision !== undefined && (current?.modRevision ?? 0) !== cmd.ifModRevision) {
      throw preconditionFailed('ifModRevision', current);
    }
    if (cmd.ifVersion !== undefined && (current?.version ?? 0) !== cmd.ifVersion) {
      throw preconditionFailed('ifVersion', current);
    }
  }
  const { prevKv } = await ctx.put(cmd.key, cmd.value, cmd.lease);
  return cmd.prevKv && prevKv !== null ? { revision: ctx.revision, prevKv } : { revision: ctx.revision };
}

async function executeDeleteRange(cmd: DeleteRangeCommand, ctx: ApplyContext): Promise<DeleteResult> {
  ctx.checkUserWrite(cmd.key, cmd.prefix);
  if (cmd.ifModRevision !== undefined) {
    const current = await ctx.get(cmd.key);
    if ((current?.modRevision ?? 0) !== cmd.ifModRevision) throw preconditionFailed('ifModRevision', current);
  }
  const deleted = await ctx.deleteRange(keyRange(cmd.key, cmd.prefix));
  const result = { revision: ctx.resultRevision, deleted: deleted.length };
  return cmd.prevKv ? { ...result, prevKvs: deleted } : result;
}

export async function executeCommand(
  cmd: Exclude<Command, CompactCommand>,
  ctx: ApplyContext,
  extensions: ReadonlyMap<string, CommandExtension>,
): Promise<ApplyResult> {
  switch (cmd.kind) {
    case 'put':
      return executePut(cmd, ctx);
    case 'deleteRange':
      return executeDeleteRange(cmd, ctx);
    case 'txn':
      return executeTxn(cmd, ctx);
    case 'ext': {
      const extension = extensions.get(cmd.name);
      if (extension === undefined) throw new KeelError('INVALID_ARGUMENT', `no store extension named ${cmd.name}`);
      extension.validate(cmd.body);
      const result = await extension.apply(cmd.body, ctx);
      return { ...result, revision: ctx.resultRevision };
    }
    default:
      return unreachable(cmd, 'command kind');
  }
}
