// The commands the API proposes through the Raft log, and the results apply() answers with.
// A command is checked by validateCommand() twice: by the API before it is proposed (bad input never reaches
// the log) and by the codec after it is decoded at apply time (an entry written by a different version, or a
// bug, must not be applied half-understood). Keys and values are UTF-8 strings; a string with a lone surrogate
// cannot round-trip through UTF-8 and is rejected rather than silently rewritten.
import type { ErrorCode } from '../util/errors.js';
import { KeelError } from '../util/errors.js';
import { limits } from '../util/limits.js';
import { utf8 } from './keys.js';

export interface KV {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  /** 1 on create, +1 per put; a delete ends the key (a later put starts again at 1). */
  readonly version: number;
  /** 0 = no lease. */
  readonly lease: number;
}

export interface Fence {
  readonly lock: string;
  readonly token: number;
}

export interface PutCommand {
  readonly kind: 'put';
  readonly key: string;
  readonly value: string;
  readonly lease: number;
  readonly prevKv: boolean;
  /** 0 = only if the key does not exist; n = only if its modRevision is n. */
  readonly ifModRevision?: number | undefined;
  /** 0 = only if the key does not exist; n = only if its version is n. */
  readonly ifVersion?: number | undefined;
  readonly fence?: Fence | undefined;
}

export interface DeleteRangeCommand {
  readonly kind: 'deleteRange';
  readonly key: string;
  readonly prefix: boolean;
  readonly prevKv: boolean;
  /** Single-key deletes only; 0 = only if the key does not exist (a no-op that still checks). */
  readonly ifModRevision?: number | undefined;
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision' | 'lease';
export type CompareOp = '==' | '!=' | '<' | '>';

export type Compare =
  | { readonly key: string; readonly target: 'value'; readonly op: CompareOp; readonly value: string }
  | {
      readonly key: string;
      readonly target: Exclude<CompareTarget, 'value'>;
      readonly op: CompareOp;
      readonly value: number;
    };

export type TxnOp =
  | { readonly put: { readonly key: string; readonly value: string; readonly lease?: number | undefined } }
  | { readonly delete: { readonly key: string; readonly prefix?: boolean | undefined } }
  | {
      readonly get: {
        readonly key: string;
        readonly prefix?: boolean | undefined;
        readonly limit?: number | undefined;
      };
    };

export interface TxnCommand {
  readonly kind: 'txn';
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
}

export interface CompactCommand {
  readonly kind: 'compact';
  readonly revision: number;
}

/**
 * The extension point for the layers above (leases, locks, elections): a named command whose body the
 * registered CommandExtension of that name validates and applies (see apply-context.ts).
 */
export interface ExtensionCommand {
  readonly kind: 'ext';
  readonly name: string;
  readonly body: unknown;
}

export type Command = PutCommand | DeleteRangeCommand | TxnCommand | CompactCommand | ExtensionCommand;

/**
 * What is proposed. `requestId` makes retries safe: a command whose id was applied recently is not applied
 * again, the original result is answered instead. The empty id opts out (internal commands that are never
 * retried).
 */
export interface CommandEnvelope {
  readonly requestId: string;
  readonly cmd: Command;
  /** Apply only if the state the command was checked against is still current (see CommandGuard). */
  readonly guard?: CommandGuard;
}

/**
 * The command was checked (authorized) against state in which `key` had not changed after `revision`. When it
 * applies, if `key` was written after `revision`, it is refused with UNAVAILABLE: not applied, and not recorded
 * under its request id, so a retry is checked again and applied afresh.
 */
export interface CommandGuard {
  readonly key: string;
  readonly revision: number;
}

// ---- results

export interface PutResult {
  readonly revision: number;
  readonly prevKv?: KV;
}

export interface DeleteResult {
  readonly revision: number;
  readonly deleted: number;
  readonly prevKvs?: readonly KV[];
}

export interface RangeResult {
  readonly kvs: readonly KV[];
  /** Keys in the range, regardless of `limit`. */
  readonly count: number;
  /** True when `limit` cut the answer short. */
  readonly more: boolean;
}

export type TxnOpResult =
  | { readonly put: { readonly revision: number } }
  | { readonly delete: { readonly deleted: number } }
  | { readonly get: RangeResult };

export interface TxnResult {
  readonly succeeded: boolean;
  /** The txn's revision if it changed something, else the store revision it read. */
  readonly revision: number;
  readonly results: readonly TxnOpResult[];
}

export interface CompactResult {
  readonly revision: number;
  readonly compactRevision: number;
}

/**
 * A user-level failure (a failed precondition, a missing lease, a compacted revision...). apply() returns it
 * instead of throwing: it is a deterministic outcome of the entry, recorded for dedupe like any result.
 * `error` is shaped like the API's error body; failureToError() turns it into the KeelError to throw.
 */
export interface ApplyFailure {
  /** The store revision when the command was refused (nothing changed). */
  readonly revision: number;
  readonly error: {
    readonly code: ErrorCode;
    readonly message: string;
    /** PRECONDITION_FAILED: the key's current version (absent when the key does not exist). */
    readonly kv?: KV;
    /** COMPACTED: the store's compact revision. */
    readonly compactRevision?: number;
  };
}

export type ApplyResult = PutResult | DeleteResult | TxnResult | CompactResult | ApplyFailure | ExtensionResult;

/** Whatever an extension answered; plain msgpack-encodable data. */
export interface ExtensionResult {
  readonly revision: number;
  readonly [field: string]: unknown;
}

export function isApplyFailure(result: unknown): result is ApplyFailure {
  return typeof result === 'object' && result !== null && 'error' in result;
}

export function failureToError(failure: ApplyFailure): KeelError {
  const { code, message, ...details } = failure.error;
  return new KeelError(code, message, { ...details, revision: failure.revision });
}

export function applyFailure(revision: number, err: KeelError): ApplyFailure {
  const extra: { kv?: KV; compactRevision?: number } = {};
  const kv = err.details['kv'];
  if (kv !== undefined) extra.kv = kv as KV;
  const compactRevision = err.details['compactRevision'];
  if (typeof compactRevision === 'number') extra.compactRevision = compactRevision;
  return { revision, error: { code: err.code, message: err.message, ...extra } };
}

// ---- validation

/** Bounds of the store's own (the contract's limits are in util/limits.ts). */
export const commandLimits = {
  requestIdBytesMax: 256,
  /** Compares, and ops per branch, in one txn (etcd's default max-txn-ops). */
  txnOpsMax: 128,
  extensionNameBytesMax: 64,
} as const;

function invalid(message: string): KeelError {
  return new KeelError('INVALID_ARGUMENT', message);
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function onlyFields(obj: Fields, allowed: readonly string[], what: string): void {
  for (const name of Object.keys(obj)) {
    if (!allowed.includes(name)) throw invalid(`${what}: unknown field "${name}"`);
  }
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Any surrogate at all: a plain scan, far cheaper than the look-arounds above, and false for most text. */
const anySurrogate = /[\uD800-\uDFFF]/;

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`);
  if (anySurrogate.test(value) && loneSurrogate.test(value)) throw invalid(`${what} is not valid UTF-8 text`);
  return value;
}

/** A key: 1..keyBytesMax bytes, or empty where the whole keyspace is meant (`allowEmpty`, prefix ranges). */
export function checkKey(value: unknown, what: string, allowEmpty = false): string {
  const key = text(value, what);
  // Valid text (checked above): its UTF-8 length, counted without encoding it.
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes === 0 && !allowEmpty) throw invalid(`${what} must not be empty`);
  if (bytes > limits.keyBytesMax) throw new KeelError('TOO_LARGE', `${what} is over ${limits.keyBytesMax} bytes`);
  return key;
}

export function checkValue(value: unknown, what: string): string {
  const result = text(value, what);
  if (Buffer.byteLength(result, 'utf8') > limits.valueBytesMax) {
    throw new KeelError('TOO_LARGE', `${what} is over ${limits.valueBytesMax} bytes`);
  }
  return result;
}

export function checkCount(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${what} must be a non-negative integer`);
  }
  return value;
}

function optionalCount(obj: Fields, name: string, what: string): number | undefined {
  return obj[name] === undefined ? undefined : checkCount(obj[name], `${what}.${name}`);
}

function flag(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw invalid(`${what} must be a boolean`);
  return value;
}

function optionalFlag(obj: Fields, name: string, what: string): boolean | undefined {
  return obj[name] === undefined ? undefined : flag(obj[name], `${what}.${name}`);
}

function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw invalid(`${what} must be an array`);
  if (value.length > commandLimits.txnOpsMax) throw invalid(`${what} has more than ${commandLimits.txnOpsMax} items`);
  return value;
}

function validatePut(obj: Fields): PutCommand {
  onlyFields(obj, ['kind', 'key', 'value', 'lease', 'prevKv', 'ifModRevision', 'ifVersion', 'fence'], 'put');
  const cmd: { -readonly [K in keyof PutCommand]: PutCommand[K] } = {
    kind: 'put',
    key: checkKey(obj['key'], 'put.key'),
    value: checkValue(obj['value'], 'put.value'),
    lease: checkCount(obj['lease'], 'put.lease'),
    prevKv: flag(obj['prevKv'], 'put.prevKv'),
  };
  const ifModRevision = optionalCount(obj, 'ifModRevision', 'put');
  if (ifModRevision !== undefined) cmd.ifModRevision = ifModRevision;
  const ifVersion = optionalCount(obj, 'ifVersion', 'put');
  if (ifVersion !== undefined) cmd.ifVersion = ifVersion;
  const fence = obj['fence'];
  if (fence !== undefined) {
    if (!isObject(fence)) throw invalid('put.fence must be an object');
    onlyFields(fence, ['lock', 'token'], 'put.fence');
    cmd.fence = { lock: checkKey(fence['lock'], 'put.fence.lock'), token: checkCount(fence['token'], 'put.fence.token') };
  }
  return cmd;
}

function validateDeleteRange(obj: Fields): DeleteRangeCommand {
  onlyFields(obj, ['kind', 'key', 'prefix', 'prevKv', 'ifModRevision'], 'deleteRange');
  const prefix = flag(obj['prefix'], 'deleteRange.prefix');
  const cmd: { -readonly [K in keyof DeleteRangeCommand]: DeleteRangeCommand[K] } = {
    kind: 'deleteRange',
    key: checkKey(obj['key'], 'deleteRange.key', prefix),
    prefix,
    prevKv: flag(obj['prevKv'], 'deleteRange.prevKv'),
  };
  const ifModRevision = optionalCount(obj, 'ifModRevision', 'deleteRange');
  if (ifModRevision !== undefined) {
    if (prefix) throw invalid('deleteRange.ifModRevision applies to a single key, not a prefix');
    cmd.ifModRevision = ifModRevision;
  }
  return cmd;
}

const compareTargets: readonly CompareTarget[] = ['value', 'version', 'createRevision', 'modRevision', 'lease'];
const compareOps: readonly CompareOp[] = ['==', '!=', '<', '>'];

function validateCompare(value: unknown, what: string): Compare {
  if (!isObject(value)) throw invalid(`${what} must be an object`);
  onlyFields(value, ['key', 'target', 'op', 'value'], what);
  const key = checkKey(value['key'], `${what}.key`);
  const target = value['target'];
  const op = value['op'];
  if (!compareTargets.includes(target as CompareTarget)) throw invalid(`${what}.target is not a compare target`);
  if (!compareOps.includes(op as CompareOp)) throw invalid(`${what}.op must be one of == != < >`);
  if (target === 'value') {
    return { key, target, op: op as CompareOp, value: checkValue(value['value'], `${what}.value`) };
  }
  const numeric = target as Exclude<CompareTarget, 'value'>;
  return { key, target: numeric, op: op as CompareOp, value: checkCount(value['value'], `${what}.value`) };
}

function validateTxnOp(value: unknown, what: string): TxnOp {
  if (!isObject(value)) throw invalid(`${what} must be an object`);
  const names = Object.keys(value);
  const name = names[0];
  const body = name === undefined ? undefined : value[name];
  if (names.length !== 1 || !isObject(body)) throw invalid(`${what} must have exactly one of put, delete, get`);
  const at = `${what}.${String(name)}`;
  if (name === 'put') {
    onlyFields(body, ['key', 'value', 'lease'], at);
    const lease = optionalCount(body, 'lease', at);
    const put = { key: checkKey(body['key'], `${at}.key`), value: checkValue(body['value'], `${at}.value`) };
    return { put: lease === undefined ? put : { ...put, lease } };
  }
  if (name === 'delete' || name === 'get') {
    onlyFields(body, name === 'get' ? ['key', 'prefix', 'limit'] : ['key', 'prefix'], at);
    const prefix = optionalFlag(body, 'prefix', at);
    const range = { key: checkKey(body['key'], `${at}.key`, prefix === true), ...(prefix === undefined ? {} : { prefix }) };
    if (name === 'delete') return { delete: range };
    const limit = optionalCount(body, 'limit', at);
    return { get: limit === undefined ? range : { ...range, limit } };
  }
  throw invalid(`${what} must have exactly one of put, delete, get`);
}

function validateTxn(obj: Fields): TxnCommand {
  onlyFields(obj, ['kind', 'compare', 'success', 'failure'], 'txn');
  return {
    kind: 'txn',
    compare: list(obj['compare'], 'txn.compare').map((c, i) => validateCompare(c, `txn.compare[${i}]`)),
    success: list(obj['success'], 'txn.success').map((op, i) => validateTxnOp(op, `txn.success[${i}]`)),
    failure: list(obj['failure'], 'txn.failure').map((op, i) => validateTxnOp(op, `txn.failure[${i}]`)),
  };
}

function validateExtension(obj: Fields): ExtensionCommand {
  onlyFields(obj, ['kind', 'name', 'body'], 'ext');
  const name = text(obj['name'], 'ext.name');
  if (name === '' || utf8(name).byteLength > commandLimits.extensionNameBytesMax) throw invalid('ext.name is out of range');
  return { kind: 'ext', name, body: obj['body'] };
}

/** Checks the shape of a command (a decoded or a freshly built one); throws KeelError INVALID_ARGUMENT/TOO_LARGE. */
export function validateCommand(value: unknown): Command {
  if (!isObject(value)) throw invalid('command must be an object');
  switch (value['kind']) {
    case 'put':
      return validatePut(value);
    case 'deleteRange':
      return validateDeleteRange(value);
    case 'txn':
      return validateTxn(value);
    case 'compact':
      onlyFields(value, ['kind', 'revision'], 'compact');
      return { kind: 'compact', revision: checkCount(value['revision'], 'compact.revision') };
    case 'ext':
      return validateExtension(value);
    default:
      throw invalid(`unknown command kind ${JSON.stringify(value['kind'])}`);
  }
}

export function validateEnvelope(value: unknown): CommandEnvelope {
  if (!isObject(value)) throw invalid('command envelope must be an object');
  onlyFields(value, ['requestId', 'cmd', 'guard'], 'envelope');
  const requestId = text(value['requestId'], 'requestId');
  if (Buffer.byteLength(requestId, 'utf8') > commandLimits.requestIdBytesMax) {
    throw invalid(`requestId is over ${commandLimits.requestIdBytesMax} bytes`);
  }
  const cmd = validateCommand(value['cmd']);
  const guard = value['guard'];
  if (guard === undefined) return { requestId, cmd };
  if (!isObject(guard)) throw invalid('guard must be an object');
  onlyFields(guard, ['key', 'revision'], 'guard');
  return { requestId, cmd, guard: { key: checkKey(guard['key'], 'guard.key'), revision: checkCount(guard['revision'], 'guard.revision') } };
}

/** One change, as watchers see it. A txn's changes share one revision and are delivered together. */
export interface StoreEvent {
  readonly type: 'put' | 'delete';
  /** For a delete: the key with modRevision = the delete's revision, an empty value and 0 for the rest. */
  readonly kv: KV;
  /** The version before this change, when asked for and still in history (absent if the key did not exist). */
  readonly prevKv?: KV;
  readonly revision: number;
}
