// The space section of cluster.config.json: `limits.quotaBytes` (the store size above which writes are refused
// with 507 NO_SPACE) and `autoCompaction` (periodic history compaction proposed by the leader). Parsed here so
// config.ts only wires it in.
import { ConfigError } from './config.js';

export interface AutoCompaction {
  /** Keep this many revisions of history; 0 = automatic compaction off (the default). */
  readonly retainRevisions: number;
  /** How often the leader checks (default 60 s). */
  readonly intervalMs: number;
}

export interface SpaceConfig {
  /** Store size (bytes of its LevelDB directory) above which writes are refused; default 2 GiB, as etcd. */
  readonly quotaBytes: number;
  /** How often each node measures its store (default 5 s; a defrag measures again at once). */
  readonly checkIntervalMs: number;
  readonly autoCompaction: AutoCompaction;
}

export const defaultSpaceConfig: SpaceConfig = {
  quotaBytes: 2 * 1024 ** 3,
  checkIntervalMs: 5_000,
  autoCompaction: { retainRevisions: 0, intervalMs: 60_000 },
};

function record(value: unknown, where: string, at: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where}: field "${at}" must be an object`);
  }
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw new ConfigError(`${where}: unknown field "${at}.${key}"`);
  }
  return value as Record<string, unknown>;
}

function integer(value: unknown, fallback: number, min: number, where: string, at: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    throw new ConfigError(`${where}: field "${at}" must be an integer >= ${min}`);
  }
  return value as number;
}

export function parseSpaceConfig(limits: unknown, autoCompaction: unknown, where: string): SpaceConfig {
  const d = defaultSpaceConfig;
  const l = limits === undefined ? {} : record(limits, where, 'limits', ['quotaBytes', 'spaceCheckIntervalMs']);
  const a = autoCompaction === undefined ? {} : record(autoCompaction, where, 'autoCompaction', ['retainRevisions', 'intervalMs']);
  return {
    quotaBytes: integer(l.quotaBytes, d.quotaBytes, 1, where, 'limits.quotaBytes'),
    checkIntervalMs: integer(l.spaceCheckIntervalMs, d.checkIntervalMs, 50, where, 'limits.spaceCheckIntervalMs'),
    autoCompaction: {
      retainRevisions: integer(a.retainRevisions, d.autoCompaction.retainRevisions, 0, where, 'autoCompaction.retainRevisions'),
      intervalMs: integer(a.intervalMs, d.autoCompaction.intervalMs, 100, where, 'autoCompaction.intervalMs'),
    },
  };
}
