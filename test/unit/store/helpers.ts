// Shared fixtures for the store tests: a store in a fresh temp dir (removed in teardown), and entry builders.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Entry } from '../../../src/raft/index.js';
import type { ApplyResult, Command, KvStoreOptions, PutResult } from '../../../src/store/index.js';
import { KvStore, encodeCommand, isApplyFailure } from '../../../src/store/index.js';

export interface TapLike {
  teardown(fn: () => unknown): void;
}

export function tempDir(t: TapLike, name = 'keel-store-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), name));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Opens a store in a fresh temp dir; closed and removed in teardown. */
export async function openStore(t: TapLike, options: KvStoreOptions = {}): Promise<{ store: KvStore; dir: string }> {
  const dir = tempDir(t);
  const store = await KvStore.open(dir, options);
  t.teardown(() => store.close());
  return { store, dir };
}

export function commandEntry(index: number, cmd: Command, requestId = ''): Entry {
  return { type: 'normal', term: 1, index, data: encodeCommand({ requestId, cmd }) };
}

export function noopEntry(index: number): Entry {
  return { type: 'normal', term: 1, index, data: new Uint8Array(0) };
}

export function putCmd(key: string, value: string, extra: Partial<Omit<Command & { kind: 'put' }, 'kind'>> = {}): Command {
  return { kind: 'put', key, value, lease: 0, prevKv: false, ...extra };
}

export function deleteCmd(key: string, extra: { prefix?: boolean; prevKv?: boolean; ifModRevision?: number } = {}): Command {
  return { kind: 'deleteRange', key, prefix: extra.prefix ?? false, prevKv: extra.prevKv ?? false, ...(extra.ifModRevision === undefined ? {} : { ifModRevision: extra.ifModRevision }) };
}

/** Applies commands one entry each after the store's appliedIndex; returns their results. */
export class Applier {
  constructor(readonly store: KvStore) {}

  async run(...cmds: Command[]): Promise<ApplyResult[]> {
    let index = this.store.appliedIndex();
    const entries = cmds.map((cmd) => commandEntry(++index, cmd));
    const results = await this.store.apply(entries);
    return results.map((r) => {
      if (r === undefined) throw new Error('a command entry had no result');
      return r;
    });
  }

  async one(cmd: Command): Promise<ApplyResult> {
    const [result] = await this.run(cmd);
    return result!;
  }

  async put(key: string, value: string, extra: Parameters<typeof putCmd>[2] = {}): Promise<PutResult> {
    const result = await this.one(putCmd(key, value, extra));
    if (isApplyFailure(result)) throw new Error(`put failed: ${result.error.code}`);
    return result as PutResult;
  }
}

/** Entries per apply() call in the kill test (crash-safety.test.ts and kill-child.ts). */
export const killCallSize = 64;

/**
 * The log of the kill test (64 calls, more than its 3 rounds of at most 12 calls each use): puts of 1 KiB values
 * (so a call's batch spans several LevelDB log blocks) and deletes.
 */
export function killLog(): Entry[] {
  const value = 'x'.repeat(1024);
  const out: Entry[] = [];
  for (let index = 1; index <= 64 * killCallSize; index++) {
    const key = `k${(index * 7919) % 500}`;
    const cmd = index % 10 === 0 ? deleteCmd(key) : putCmd(key, `${index}:${value}`);
    out.push(commandEntry(index, cmd, `kill-${index}`));
  }
  return out;
}
