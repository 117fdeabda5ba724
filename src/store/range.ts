// Range reads with etcd's options: which keys (one key, a prefix or [key, rangeEnd)), at which revision, how
// many, sorted how. `count` is always the number of keys in the range, `more` says that `limit` cut it short.
import { KeelError } from '../util/errors.js';
import type { KV, RangeResult } from './commands.js';
import { checkCount, checkKey } from './commands.js';
import type { KeyRange } from './keys.js';
import { ownUtf8, prefixEnd, singleKeyEnd } from './keys.js';
import type { ReadView } from './mvcc.js';

export type SortTarget = 'key' | 'createRevision' | 'modRevision';
export type SortOrder = 'asc' | 'desc';

export interface RangeRequest {
  readonly key: string;
  /** Every key that starts with `key` (the empty key with prefix = the whole keyspace). */
  readonly prefix?: boolean | undefined;
  /** Keys in [key, rangeEnd); etcd's "\0" means every key >= `key`. Exclusive with `prefix`. */
  readonly rangeEnd?: string | undefined;
  /** 0 or absent = no limit. */
  readonly limit?: number | undefined;
  /** Values are answered as empty strings. */
  readonly keysOnly?: boolean | undefined;
  /** Only `count` is answered (kvs empty, more false). */
  readonly countOnly?: boolean | undefined;
  /** 0 or absent = the current revision. */
  readonly revision?: number | undefined;
  readonly sort?: SortTarget | undefined;
  readonly order?: SortOrder | undefined;
}

export interface RangeShape {
  readonly limit: number;
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
  readonly sort: SortTarget;
  readonly order: SortOrder;
}

function invalid(message: string): KeelError {
  return new KeelError('INVALID_ARGUMENT', message);
}

/** A key range of its own bytes (a watcher keeps its range for as long as it lives: see keys.ts utf8()). */
export function keyRange(key: string, prefix: boolean, rangeEnd?: string): KeyRange {
  const start = ownUtf8(key);
  if (prefix) return { start, end: prefixEnd(start) };
  if (rangeEnd === undefined) return { start, end: new Uint8Array(singleKeyEnd(start)) };
  return { start, end: rangeEnd === '\u0000' ? null : ownUtf8(rangeEnd) };
}

/** Checks a range request from the API (untrusted input) and splits it into keys, revision and shape. */
export function parseRangeRequest(req: RangeRequest): { range: KeyRange; revision: number; shape: RangeShape } {
  const prefix = req.prefix ?? false;
  if (prefix && req.rangeEnd !== undefined) throw invalid('prefix and rangeEnd are exclusive');
  const key = checkKey(req.key, 'key', prefix || req.rangeEnd !== undefined);
  if (req.rangeEnd !== undefined && req.rangeEnd !== '\u0000') checkKey(req.rangeEnd, 'rangeEnd');
  const sort = req.sort ?? 'key';
  const order = req.order ?? 'asc';
  if (!['key', 'createRevision', 'modRevision'].includes(sort)) throw invalid('sort must be key, createRevision or modRevision');
  if (order !== 'asc' && order !== 'desc') throw invalid('order must be asc or desc');
  return {
    range: keyRange(key, prefix, req.rangeEnd),
    revision: checkCount(req.revision ?? 0, 'revision'),
    shape: {
      limit: checkCount(req.limit ?? 0, 'limit'),
      keysOnly: req.keysOnly ?? false,
      countOnly: req.countOnly ?? false,
      sort,
      order,
    },
  };
}

function stripValue(kv: KV): KV {
  return { ...kv, value: '' };
}

function finish(kvs: readonly KV[], count: number, shape: RangeShape): RangeResult {
  if (shape.countOnly) return { kvs: [], count, more: false };
  return { kvs: shape.keysOnly ? kvs.map(stripValue) : [...kvs], count, more: kvs.length < count };
}

/** Sorts (stable, ties in key order), limits and strips a key-ordered list of versions. */
export function shapeRange(keyOrdered: readonly KV[], shape: RangeShape): RangeResult {
  let kvs = [...keyOrdered];
  if (shape.sort !== 'key') {
    const field = shape.sort;
    kvs.sort((a, b) => a[field] - b[field]);
  }
  if (shape.order === 'desc') kvs.reverse();
  if (shape.limit > 0) kvs = kvs.slice(0, shape.limit);
  return finish(kvs, keyOrdered.length, shape);
}

/** Reads the live keys of the range (the current revision). */
export async function readCurrentRange(view: ReadView, range: KeyRange, shape: RangeShape): Promise<RangeResult> {
  if (shape.countOnly) return finish([], await view.countCurrent(range), shape);
  if (shape.sort !== 'key') return shapeRange(await view.currentRange(range, 0, false), shape);
  // Key order is LevelDB's order: read only `limit` versions, and count the rest without decoding them.
  const kvs = await view.currentRange(range, shape.limit, shape.order === 'desc');
  const count = shape.limit > 0 && kvs.length === shape.limit ? await view.countCurrent(range) : kvs.length;
  return finish(kvs, count, shape);
}

/** Reads the keys of the range as they were at a past revision (not compacted: checked by the caller). */
export async function readRangeAt(
  view: ReadView,
  range: KeyRange,
  revision: number,
  shape: RangeShape,
): Promise<RangeResult> {
  const pointers = await view.pointersAt(range, revision);
  if (shape.countOnly) return finish([], pointers.length, shape);
  if (shape.sort !== 'key') return shapeRange(await view.load(pointers), shape);
  const ordered = shape.order === 'desc' ? [...pointers].reverse() : pointers;
  const wanted = shape.limit > 0 ? ordered.slice(0, shape.limit) : ordered;
  return finish(await view.load(wanted), pointers.length, shape);
}

