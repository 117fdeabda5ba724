// The service registry's replicated part: the instance record, its validation, and the three store extensions
// that change it (service.register, service.deregister, service.status). An instance is the ordinary MVCC key
// serviceKeys.instance(service, id) whose value is the instance record as JSON, attached to the instance's lease
// when it has one, so a lease that expires or is revoked takes the instance with it and every watcher of
// `_keel/services/` sees registrations, status changes and removals as plain put/delete events.
//
// Apply is deterministic: the record is built field by field in a fixed order (meta sorted by key) from the
// validated command body, `status` starts "passing", and nothing reads a clock. Health decisions (critical,
// deregister after continuous failure) are made by the leader's HealthChecker and enter the log as
// service.status / service.deregister commands guarded by `ifModRevision`, so a decision taken on a stale view
// (the instance was re-registered meanwhile) is refused instead of applied to the new registration.
import type { ApplyContext, CommandExtension, ExtensionCommand, KV } from '../store/index.js';
import { KeelError } from '../util/errors.js';
import { limits } from '../util/limits.js';
import { checkTtl } from './lessor.js';
import { extensionNames, namePattern, serviceKeys } from './prefixes.js';
import { invalid } from './validate.js';

export type InstanceStatus = 'passing' | 'critical';

/** Exactly one of `http` (a 2xx answer to GET passes) or `tcp` ("host:port", a connect passes). */
export interface HealthCheck {
  readonly http?: string;
  readonly tcp?: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Continuous failure for this long removes the instance; absent = stay critical until removed otherwise. */
  readonly deregisterAfterMs?: number;
}

/** The stored value (JSON) of an instance key. */
export interface InstanceRecord {
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  readonly status: InstanceStatus;
  readonly lease: number;
  readonly check?: HealthCheck;
}

/** API.md's Instance: the record plus the key's modRevision (`lease` is the key's, which is authoritative). */
export interface Instance extends InstanceRecord {
  readonly modRevision: number;
}

export interface RegisterBody {
  readonly service: string;
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  /** 0 = no lease. With `ttl`: the id of the lease this entry grants; else an existing lease. */
  readonly lease: number;
  /** Grant lease `lease` with this ttl (seconds) in the same entry as the registration. */
  readonly ttl?: number;
  readonly check?: HealthCheck;
}

/** What registration needs from the lessor: granting a lease inside the registration's own entry. */
export interface LeaseGranter {
  /** Deterministic, apply-time only: creates lease `id` with `ttl` in this entry (CONFLICT if it exists). */
  applyGrant(ctx: ApplyContext, id: number, ttl: number): Promise<void>;
}

export interface DeregisterBody {
  readonly service: string;
  readonly id: string;
  /** Only if the instance key still has this modRevision (the health checker's guard). */
  readonly ifModRevision?: number;
}

export interface StatusBody {
  readonly service: string;
  readonly id: string;
  readonly status: InstanceStatus;
  readonly ifModRevision: number;
}

/** Bounds of the registry's inputs (the API schema states the same ones, the extensions check them again). */
export const registryLimits = {
  addressBytesMax: 255,
  tagsMax: 64,
  tagBytesMax: 256,
  metaEntriesMax: 64,
  metaKeyBytesMax: 128,
  metaValueBytesMax: 1024,
  weightMax: 1_000_000,
  checkTargetBytesMax: 2048,
  /** Lower bound of intervalMs, timeoutMs and deregisterAfterMs. */
  checkMsMin: 100,
  /** Upper bound of intervalMs and timeoutMs. */
  checkIntervalMsMax: 86_400_000,
  deregisterAfterMsMax: 30 * 86_400_000,
} as const;

// ---- validation (untrusted input: the API body before proposing, and the decoded command before applying)

type Fields = Record<string, unknown>;

function object(value: unknown, what: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw invalid(`${what} must be an object`);
  }
  return value as Fields;
}

function onlyFields(obj: Fields, allowed: readonly string[], what: string): void {
  for (const name of Object.keys(obj)) {
    if (!allowed.includes(name)) throw invalid(`${what}: unknown field "${name}"`);
  }
}

function bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function text(value: unknown, what: string, bytesMax: number, allowEmpty = false): string {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`);
  if (loneSurrogate.test(value)) throw invalid(`${what} is not valid UTF-8 text`);
  if (value === '' && !allowEmpty) throw invalid(`${what} must not be empty`);
  if (bytes(value) > bytesMax) throw invalid(`${what} is over ${bytesMax} bytes`);
  return value;
}

export function checkName(value: unknown, what: string): string {
  if (typeof value !== 'string' || !namePattern.test(value)) {
    throw invalid(`${what} must be 1..256 characters of [A-Za-z0-9._:-]`);
  }
  return value;
}

function integer(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(`${what} must be an integer in ${min}..${max}`);
  }
  return value;
}

function checkTags(value: unknown): string[] {
  if (!Array.isArray(value)) throw invalid('tags must be an array of strings');
  if (value.length > registryLimits.tagsMax) throw invalid(`tags has more than ${registryLimits.tagsMax} items`);
  return value.map((tag, i) => text(tag, `tags[${i}]`, registryLimits.tagBytesMax));
}

/** Meta as a plain object with its keys sorted, so equal input gives equal bytes. */
function checkMeta(value: unknown): Record<string, string> {
  const meta = object(value, 'meta');
  const names = Object.keys(meta).sort();
  if (names.length > registryLimits.metaEntriesMax) throw invalid(`meta has more than ${registryLimits.metaEntriesMax} entries`);
  const sorted: Record<string, string> = {};
  for (const name of names) {
    text(name, 'a meta key', registryLimits.metaKeyBytesMax);
    if (name === '__proto__') throw invalid('meta key "__proto__" is not allowed');
    sorted[name] = text(meta[name], `meta.${name}`, registryLimits.metaValueBytesMax, true);
  }
  return sorted;
}

function checkHttpTarget(value: unknown): string {
  const target = text(value, 'check.http', registryLimits.checkTargetBytesMax);
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw invalid('check.http must be an absolute http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('check.http must be an http:// or https:// URL');
  return target;
}

/** "host:port" or "[v6]:port". */
export function splitTcpTarget(target: string): { host: string; port: number } | null {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(target);
  if (match === null) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return null;
  return { host: match[1] ?? match[2] ?? '', port };
}

function checkTcpTarget(value: unknown): string {
  const target = text(value, 'check.tcp', registryLimits.checkTargetBytesMax);
  if (splitTcpTarget(target) === null) throw invalid('check.tcp must be "host:port" with a port in 1..65535');
  return target;
}

export function checkHealthCheck(value: unknown): HealthCheck {
  const check = object(value, 'check');
  onlyFields(check, ['http', 'tcp', 'intervalMs', 'timeoutMs', 'deregisterAfterMs'], 'check');
  const hasHttp = check['http'] !== undefined;
  if (hasHttp === (check['tcp'] !== undefined)) throw invalid('check must have exactly one of http and tcp');
  const { checkMsMin, checkIntervalMsMax } = registryLimits;
  const intervalMs = integer(check['intervalMs'], 'check.intervalMs', checkMsMin, checkIntervalMsMax);
  const timeoutMs = integer(check['timeoutMs'], 'check.timeoutMs', checkMsMin, checkIntervalMsMax);
  const target = hasHttp ? { http: checkHttpTarget(check['http']) } : { tcp: checkTcpTarget(check['tcp']) };
  const result: HealthCheck = { ...target, intervalMs, timeoutMs };
  if (check['deregisterAfterMs'] === undefined) return result;
  const deregisterAfterMs = integer(check['deregisterAfterMs'], 'check.deregisterAfterMs', checkMsMin, registryLimits.deregisterAfterMsMax);
  return { ...result, deregisterAfterMs };
}

export function validateRegister(body: unknown): RegisterBody {
  const obj = object(body, 'service.register');
  onlyFields(obj, ['service', 'id', 'address', 'port', 'tags', 'meta', 'weight', 'lease', 'ttl', 'check'], 'service.register');
  let result: RegisterBody = {
    service: checkName(obj['service'], 'service'),
    id: checkName(obj['id'], 'instance id'),
    address: text(obj['address'], 'address', registryLimits.addressBytesMax),
    port: integer(obj['port'], 'port', 1, 65_535),
    tags: checkTags(obj['tags']),
    meta: checkMeta(obj['meta']),
    weight: integer(obj['weight'], 'weight', 0, registryLimits.weightMax),
    lease: integer(obj['lease'], 'lease', 0, Number.MAX_SAFE_INTEGER),
  };
  if (obj['ttl'] !== undefined) {
    if (result.lease === 0) throw invalid('a registration with ttl names the lease id to grant');
    result = { ...result, ttl: checkTtl(obj['ttl']) };
  }
  return obj['check'] === undefined ? result : { ...result, check: checkHealthCheck(obj['check']) };
}

export function validateDeregister(body: unknown): DeregisterBody {
  const obj = object(body, 'service.deregister');
  onlyFields(obj, ['service', 'id', 'ifModRevision'], 'service.deregister');
  const result = { service: checkName(obj['service'], 'service'), id: checkName(obj['id'], 'instance id') };
  if (obj['ifModRevision'] === undefined) return result;
  return { ...result, ifModRevision: integer(obj['ifModRevision'], 'ifModRevision', 1, Number.MAX_SAFE_INTEGER) };
}

export function validateStatus(body: unknown): StatusBody {
  const obj = object(body, 'service.status');
  onlyFields(obj, ['service', 'id', 'status', 'ifModRevision'], 'service.status');
  const status = obj['status'];
  if (status !== 'passing' && status !== 'critical') throw invalid('status must be "passing" or "critical"');
  return {
    service: checkName(obj['service'], 'service'),
    id: checkName(obj['id'], 'instance id'),
    status,
    ifModRevision: integer(obj['ifModRevision'], 'ifModRevision', 1, Number.MAX_SAFE_INTEGER),
  };
}

// ---- the stored record

/** The record in a fixed field order (the order of the JSON bytes every node writes); `ttl` is not part of it. */
function recordOf(body: RegisterBody, status: InstanceStatus): InstanceRecord {
  const record: InstanceRecord = {
    id: body.id,
    service: body.service,
    address: body.address,
    port: body.port,
    tags: [...body.tags],
    meta: body.meta,
    weight: body.weight,
    status,
    lease: body.lease,
  };
  return body.check === undefined ? record : { ...record, check: body.check };
}

function encodeRecord(record: InstanceRecord): string {
  const value = JSON.stringify(record);
  if (bytes(value) > limits.valueBytesMax) {
    throw new KeelError('TOO_LARGE', `the instance record is over ${limits.valueBytesMax} bytes`);
  }
  return value;
}

/**
 * Reads an instance key back. The record is checked with the same rules as a registration: a value that does
 * not pass (a key under the service prefix written by something else) is not an instance, and null is returned.
 */
export function instanceFromKv(kv: KV): Instance | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(kv.value);
  } catch {
    return null;
  }
  try {
    const { status, ...rest } = object(parsed, 'instance record');
    if (status !== 'passing' && status !== 'critical') return null;
    if (rest['ttl'] !== undefined) return null;
    const body = validateRegister(rest);
    if (kv.key !== serviceKeys.instance(body.service, body.id)) return null;
    return { ...recordOf({ ...body, lease: kv.lease }, status), modRevision: kv.modRevision };
  } catch (err) {
    if (err instanceof KeelError) return null;
    throw err;
  }
}

async function currentInstance(ctx: ApplyContext, service: string, id: string): Promise<{ kv: KV; instance: Instance }> {
  const kv = await ctx.get(serviceKeys.instance(service, id));
  const instance = kv === null ? null : instanceFromKv(kv);
  if (kv === null || instance === null) {
    throw new KeelError('NOT_FOUND', `instance ${id} of service ${service} not found`, { service, id });
  }
  return { kv, instance };
}

function checkModRevision(kv: KV, ifModRevision: number | undefined): void {
  if (ifModRevision !== undefined && kv.modRevision !== ifModRevision) {
    throw new KeelError('PRECONDITION_FAILED', `instance changed since revision ${ifModRevision}`, {});
  }
}

// ---- the extensions

function registerExtension(leases: LeaseGranter): CommandExtension {
  return {
    name: extensionNames.serviceRegister,
    validate: (body) => void validateRegister(body),
    apply: async (raw, ctx) => {
      const body = validateRegister(raw);
      const key = serviceKeys.instance(body.service, body.id);
      // One entry grants the lease and attaches the instance to it: no lease without its instance, or the reverse.
      if (body.ttl !== undefined) await leases.applyGrant(ctx, body.lease, body.ttl);
      // Registering again replaces the instance (and its status starts over as "passing"). An existing `lease`
      // that does not exist fails here (the store's leaseExists hook): LEASE_NOT_FOUND.
      await ctx.put(key, encodeRecord(recordOf(body, 'passing')), body.lease);
      return { service: body.service, id: body.id, lease: body.lease };
    },
  };
}

export const deregisterExtension: CommandExtension = {
  name: extensionNames.serviceDeregister,
  validate: (body) => void validateDeregister(body),
  apply: async (raw, ctx) => {
    const body = validateDeregister(raw);
    const { kv } = await currentInstance(ctx, body.service, body.id);
    checkModRevision(kv, body.ifModRevision);
    ctx.delete(kv);
    return { service: body.service, id: body.id, lease: kv.lease };
  },
};

export const statusExtension: CommandExtension = {
  name: extensionNames.serviceStatus,
  validate: (body) => void validateStatus(body),
  apply: async (raw, ctx) => {
    const body = validateStatus(raw);
    const { kv, instance } = await currentInstance(ctx, body.service, body.id);
    checkModRevision(kv, body.ifModRevision);
    // No change, no revision: watchers and blocking queries only wake for real changes.
    if (instance.status === body.status) return { service: body.service, id: body.id, status: body.status, changed: false };
    const { modRevision: _modRevision, ...record } = instance;
    await ctx.put(kv.key, encodeRecord({ ...record, status: body.status }), kv.lease);
    return { service: body.service, id: body.id, status: body.status, changed: true };
  },
};

/** The registry's store extensions; every node's store must be opened with them (and the lessor's). */
export function registryExtensions(leases: LeaseGranter): readonly CommandExtension[] {
  return [registerExtension(leases), deregisterExtension, statusExtension];
}

// ---- command builders (validated, so a bad command never reaches the log)

export function registerCommand(body: RegisterBody): ExtensionCommand {
  return { kind: 'ext', name: extensionNames.serviceRegister, body: validateRegister(body) };
}

export function deregisterCommand(body: DeregisterBody): ExtensionCommand {
  return { kind: 'ext', name: extensionNames.serviceDeregister, body: validateDeregister(body) };
}

export function statusCommand(body: StatusBody): ExtensionCommand {
  return { kind: 'ext', name: extensionNames.serviceStatus, body: validateStatus(body) };
}
