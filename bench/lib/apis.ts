// The same workload spoken to each system: Keel's HTTP+JSON API (shared/API.md) and etcd's v3 JSON gateway
// (grpc-gateway: POST /v3/..., keys and values base64, 64-bit numbers as strings, streams as one JSON per line).
import type { HttpRequest } from './http.js';

export type SystemName = 'keel' | 'etcd';

export interface Api {
  readonly system: SystemName;
  put(key: string, value: string): HttpRequest;
  read(key: string, serializable: boolean): HttpRequest;
  watch(key: string): HttpRequest;
  /** The values of the put events carried by one line of a watch stream (none for created/progress lines). */
  watchedValues(line: string): string[];
  leaseGrant(ttlSeconds: number): HttpRequest;
  /** The lease id in a grant answer. */
  leaseId(body: string): string;
  leaseKeepalive(id: string): HttpRequest;
}

// A fresh headers object per request: autocannon adds content-length to the object it is given.
const json = (): Record<string, string> => ({ 'content-type': 'application/json' });

function keyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

export const keelApi: Api = {
  system: 'keel',
  put: (key, value) => ({ method: 'PUT', path: `/v1/kv/${keyPath(key)}`, headers: json(), body: JSON.stringify({ value }) }),
  read: (key, serializable) => ({
    method: 'GET',
    path: `/v1/kv/${keyPath(key)}?consistency=${serializable ? 'serializable' : 'linearizable'}`,
    headers: {},
  }),
  watch: (key) => ({ method: 'GET', path: `/v1/watch/${keyPath(key)}`, headers: { accept: 'application/x-ndjson' } }),
  watchedValues: (line) => {
    const message = JSON.parse(line) as { type?: string; kv?: { value?: string } };
    return message.type === 'put' && typeof message.kv?.value === 'string' ? [message.kv.value] : [];
  },
  leaseGrant: (ttl) => ({ method: 'POST', path: '/v1/leases', headers: json(), body: JSON.stringify({ ttl }) }),
  leaseId: (body) => String((JSON.parse(body) as { id: number }).id),
  // No body and so no content-type: fastify refuses an empty body that claims to be JSON.
  leaseKeepalive: (id) => ({ method: 'POST', path: `/v1/leases/${id}/keepalive`, headers: {} }),
};

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text: string): string => Buffer.from(text, 'base64').toString('utf8');

export const etcdApi: Api = {
  system: 'etcd',
  put: (key, value) => ({ method: 'POST', path: '/v3/kv/put', headers: json(), body: JSON.stringify({ key: b64(key), value: b64(value) }) }),
  read: (key, serializable) => ({
    method: 'POST',
    path: '/v3/kv/range',
    headers: json(),
    body: JSON.stringify({ key: b64(key), serializable }),
  }),
  watch: (key) => ({ method: 'POST', path: '/v3/watch', headers: json(), body: JSON.stringify({ create_request: { key: b64(key) } }) }),
  watchedValues: (line) => {
    const message = JSON.parse(line) as { result?: { events?: { type?: string; kv?: { value?: string } }[] } };
    const events = message.result?.events ?? [];
    // The gateway omits the default enum value: a put event has no "type" (a delete has "DELETE").
    return events.filter((e) => e.type === undefined || e.type === 'PUT').map((e) => unb64(e.kv?.value ?? ''));
  },
  leaseGrant: (ttl) => ({ method: 'POST', path: '/v3/lease/grant', headers: json(), body: JSON.stringify({ TTL: ttl }) }),
  leaseId: (body) => String((JSON.parse(body) as { ID: string }).ID),
  leaseKeepalive: (id) => ({ method: 'POST', path: '/v3/lease/keepalive', headers: json(), body: JSON.stringify({ ID: id }) }),
};
