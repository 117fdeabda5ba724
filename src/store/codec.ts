// The store's one codec: commands on the wire (Raft entry data) and the records it keeps in LevelDB.
//
// Every msgpackr option is set explicitly. Records (msgpackr's shared structures) are off on purpose: with them
// the bytes of a value depend on which shapes the encoder met before, so two nodes could write different bytes
// for the same state, and a structure table would become one more thing to persist. Instead the record layouts
// are declared here as fixed tuples, which are as compact and fully determined by the value.
//
// Commands carry a version tag (`v`); stored records are covered by the store's format version (keys.ts, checked
// on open). Decoding validates the shape: a bad command becomes a KeelError (apply answers it as a failure); a
// bad stored record is corruption and fails an assertion, which stops the node instead of serving it.
import { FLOAT32_OPTIONS, Packr } from 'msgpackr';
import { assert } from '../util/assert.js';
import { KeelError } from '../util/errors.js';
import { dropGrownPackBuffer } from '../util/msgpack-buffer.js';
import type { CommandEnvelope, KV } from './commands.js';
import { validateEnvelope } from './commands.js';

const packr = new Packr({
  useRecords: false,
  structures: [],
  maxSharedStructures: 0,
  maxOwnStructures: 0,
  shouldShareStructure: () => false,
  moreTypes: false,
  structuredClone: false,
  mapsAsObjects: true,
  variableMapSize: true,
  useFloat32: FLOAT32_OPTIONS.NEVER,
  useTimestamp32: false,
  int64AsType: 'number',
  largeBigIntToFloat: false,
  largeBigIntToString: false,
  useBigIntExtension: false,
  bundleStrings: false,
  sequential: false,
  copyBuffers: true,
  useToJSON: false,
  encodeUndefinedAsNil: false,
  coercibleKeyAsNumber: false,
  mapAsEmptyObject: false,
  setAsEmptyObject: false,
  allowArraysInMapKeys: false,
});

/** Version of the command envelope on the wire. */
export const commandVersion = 1;

export function pack(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * Packs a large value (a snapshot) into its own exactly-sized buffer: a copy, so the result does not keep
 * msgpackr's grown shared buffer alive, which is then dropped (see util/msgpack-buffer.ts).
 */
export function packDetached(value: unknown): Uint8Array {
  const view = packr.pack(value);
  const own = new Uint8Array(view);
  dropGrownPackBuffer(packr, view);
  return own;
}

export function unpack(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

// ---- commands

/** Encodes a command for proposal; validates first, so a bad command never reaches the log. */
export function encodeCommand(envelope: CommandEnvelope): Uint8Array {
  const checked = validateEnvelope(envelope);
  const { requestId, cmd, guard } = checked;
  return pack(guard === undefined ? { v: commandVersion, requestId, cmd } : { v: commandVersion, requestId, cmd, guard });
}

export function decodeCommand(bytes: Uint8Array): CommandEnvelope {
  let raw: unknown;
  try {
    raw = unpack(bytes);
  } catch (err) {
    throw new KeelError('INVALID_ARGUMENT', 'command bytes are not valid msgpack', {}, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null || !('v' in raw)) {
    throw new KeelError('INVALID_ARGUMENT', 'command has no version tag');
  }
  const { v, ...envelope } = raw as Record<string, unknown>;
  if (v !== commandVersion) throw new KeelError('INVALID_ARGUMENT', `unsupported command version ${String(v)}`);
  return validateEnvelope(envelope);
}

// ---- stored records

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** k/ value: [value, createRevision, modRevision, version, lease]. */
export function encodeKvRecord(kv: KV): Uint8Array {
  return pack([kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease]);
}

export function decodeKvRecord(key: string, bytes: Uint8Array): KV {
  const raw = unpack(bytes);
  assert(Array.isArray(raw) && raw.length === 5, 'corrupt kv record');
  const [value, createRevision, modRevision, version, lease] = raw as unknown[];
  assert(typeof value === 'string', 'corrupt kv record: value');
  assert(isCount(createRevision) && isCount(modRevision), 'corrupt kv record: revisions');
  assert(isCount(version) && version >= 1 && isCount(lease), 'corrupt kv record: version/lease');
  return { key, value, createRevision, modRevision, version, lease };
}

export type EventType = 'put' | 'delete';

/** What a revision record holds; the revision and sub are in its LevelDB key. */
export interface ChangeRecord {
  readonly type: EventType;
  /** For a delete: the key with an empty value, createRevision/version/lease 0 (etcd's tombstone shape). */
  readonly kv: KV;
}

/** r/ value: [0 put | 1 delete, key, value, createRevision, version, lease]; modRevision is the revision. */
export function encodeChangeRecord(change: ChangeRecord): Uint8Array {
  const { kv } = change;
  return pack([change.type === 'put' ? 0 : 1, kv.key, kv.value, kv.createRevision, kv.version, kv.lease]);
}

export function decodeChangeRecord(revision: number, bytes: Uint8Array): ChangeRecord {
  const raw = unpack(bytes);
  assert(Array.isArray(raw) && raw.length === 6, 'corrupt revision record');
  const [type, key, value, createRevision, version, lease] = raw as unknown[];
  assert(type === 0 || type === 1, 'corrupt revision record: type');
  assert(typeof key === 'string' && typeof value === 'string', 'corrupt revision record: key/value');
  assert(isCount(createRevision) && isCount(version) && isCount(lease), 'corrupt revision record: numbers');
  return {
    type: type === 0 ? 'put' : 'delete',
    kv: { key, value, createRevision, modRevision: revision, version, lease },
  };
}

/** h/ value: the change type, so a scan of marks can skip deleted keys without reading revision records. */
export function encodeMark(type: EventType): Uint8Array {
  return Uint8Array.of(type === 'put' ? 0 : 1);
}

export function decodeMark(bytes: Uint8Array): EventType {
  assert(bytes.byteLength === 1 && (bytes[0] === 0 || bytes[0] === 1), 'corrupt history mark');
  return bytes[0] === 0 ? 'put' : 'delete';
}

/** d/ value: [seq, result]. */
export function encodeDedupeRecord(seq: number, result: unknown): Uint8Array {
  return pack([seq, result]);
}

export function decodeDedupeRecord(bytes: Uint8Array): { seq: number; result: unknown } {
  const raw = unpack(bytes);
  assert(Array.isArray(raw) && raw.length === 2 && isCount(raw[0]), 'corrupt dedupe record');
  return { seq: raw[0] as number, result: raw[1] };
}
