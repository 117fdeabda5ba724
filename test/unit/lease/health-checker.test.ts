// Goal: the leader-side health checker probes only while it is leader, proposes service.status only when the
// probe result differs from the stored status, deregisters an instance only after deregisterAfterMs of
// continuous failure observed by the CURRENT leadership (a new leadership starts its failure clock over), follows
// registrations/re-registrations/removals through its watch, bounds concurrent probes, aborts probes when it
// stops, and runs real HTTP and TCP probes against loopback servers (2xx passes, 500 fails, refused fails,
// timeoutMs bounds a hung server).
// Method: a real store with the registry extensions; the checker's proposeLocal applies each command as the next
// entry (a one-node "log"); scripted probers stand in for the network except in the last two tests, which use
// node:http / node:net servers on 127.0.0.1 port 0. Timings use the 100 ms minimum interval.
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import {
  HealthChecker,
  NetworkProber,
  readInstances,
  registerCommand,
  type HealthCheck,
  type Prober,
  type RegisterBody,
} from '../../../src/lease/index.js';
import { extensionNames } from '../../../src/lease/prefixes.js';
import { decodeCommand, type ExtensionCommand } from '../../../src/store/index.js';
import { systemClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/logger.js';
import { openRegistryStore, type SerialLog } from './helpers.js';

const check: HealthCheck = { tcp: '127.0.0.1:1', intervalMs: 100, timeoutMs: 100, deregisterAfterMs: 600 };
const base: RegisterBody = { service: 'web', id: 'i1', address: '127.0.0.1', port: 1, tags: [], meta: {}, weight: 1, lease: 0, check };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A prober whose answer the test switches; counts probes. */
function scripted(initial: boolean): { prober: Prober; set(isPassing: boolean): void; probes: () => number } {
  let isPassing = initial;
  let probes = 0;
  return {
    prober: async () => {
      probes++;
      return { isPassing, detail: isPassing ? 'ok' : 'down' };
    },
    set: (value) => {
      isPassing = value;
    },
    probes: () => probes,
  };
}

/** The checker's proposals (decoded), recorded as they go to the log. */
function recording(log: SerialLog): { proposeLocal: (command: Uint8Array) => Promise<unknown>; proposals: ExtensionCommand[] } {
  const proposals: ExtensionCommand[] = [];
  return {
    proposals,
    proposeLocal: (command) => {
      proposals.push(decodeCommand(command).cmd as ExtensionCommand);
      return log.propose(command);
    },
  };
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
  return performance.now() - started;
}

async function statusOf(log: SerialLog, id = 'i1'): Promise<string | null> {
  const instance = (await readInstances(log.store, 'web')).instances.find((i) => i.id === id);
  return instance?.status ?? null;
}

void t.test('leader only; a status proposal only on change; deregistered after deregisterAfterMs of failure', async (t) => {
  const { store, log } = await openRegistryStore(t);
  const probe = scripted(true);
  const { proposeLocal, proposals } = recording(log);
  const checker = new HealthChecker({ store, proposeLocal, clock: systemClock, logger: silentLogger, prober: probe.prober });
  t.teardown(() => checker.close());
  await log.ok(registerCommand(base));
  await sleep(300);
  t.equal(probe.probes(), 0, 'a follower probes nothing');

  checker.setLeader(true);
  await waitUntil('probes', 2_000, () => probe.probes() >= 3);
  t.same(proposals, [], 'passing and stored passing: nothing proposed');
  t.same(checker.stats(), { isActive: true, targets: 1, probesInFlight: 0 });

  probe.set(false);
  const failedAt = performance.now();
  await waitUntil('critical', 2_000, async () => (await statusOf(log)) === 'critical');
  const criticalMs = performance.now() - failedAt;
  t.ok(criticalMs < 1_000, `critical within about one interval (${Math.round(criticalMs)} ms; bound generous for a loaded machine)`);
  await sleep(250);
  t.equal(proposals.filter((p) => p.name === extensionNames.serviceStatus).length, 1, 'one status proposal for one change');

  probe.set(true);
  await waitUntil('passing again', 2_000, async () => (await statusOf(log)) === 'passing');
  probe.set(false);
  const secondFailureAt = performance.now();
  await waitUntil('deregistered', 3_000, async () => (await statusOf(log)) === null);
  const goneMs = performance.now() - secondFailureAt;
  t.ok(goneMs >= 600 - 100, `not removed before deregisterAfterMs of continuous failure (${Math.round(goneMs)} ms)`);
  t.ok(goneMs < 600 + 1_000, `removed soon after deregisterAfterMs (${Math.round(goneMs)} ms)`);
  t.same(
    proposals.map((p) => (p.name === extensionNames.serviceStatus ? (p.body as { status: string }).status : 'deregister')),
    ['critical', 'passing', 'critical', 'deregister'],
    'every proposal, in order',
  );
  await sleep(250);
  t.equal(checker.stats().targets, 0, 'a removed instance is no longer probed');

  checker.setLeader(false);
  const probesWhenStopped = probe.probes();
  await log.ok(registerCommand(base));
  await sleep(300);
  t.equal(probe.probes(), probesWhenStopped, 'no probes after losing leadership');
  t.same(checker.stats(), { isActive: false, targets: 0, probesInFlight: 0 });
});

void t.test('a new leadership starts its failure clock over; re-registration does too', async (t) => {
  const { store, log } = await openRegistryStore(t);
  const probe = scripted(false);
  const { proposeLocal, proposals } = recording(log);
  const checker = new HealthChecker({ store, proposeLocal, clock: systemClock, logger: silentLogger, prober: probe.prober });
  t.teardown(() => checker.close());
  await log.ok(registerCommand(base));
  checker.setLeader(true);
  await waitUntil('critical', 2_000, async () => (await statusOf(log)) === 'critical');
  await sleep(400); // 400 of the 600 ms
  checker.setLeader(false);
  checker.setLeader(true); // "another" leadership on this node: it trusts nothing the old one saw
  const restartedAt = performance.now();
  await sleep(400);
  t.equal(await statusOf(log), 'critical', 'still registered 800 ms after the first failure: the new leader saw only 400');
  await waitUntil('deregistered', 2_000, async () => (await statusOf(log)) === null);
  t.ok(performance.now() - restartedAt >= 500, 'removed only after deregisterAfterMs of failures seen by the new leadership');
  t.equal(proposals.filter((p) => p.name === extensionNames.serviceStatus).length, 1, 'critical was proposed once (already stored)');

  // Re-registering a failing instance starts it over as passing, with a fresh failure clock.
  await log.ok(registerCommand(base));
  const reRegisteredAt = performance.now();
  await waitUntil('critical again', 2_000, async () => (await statusOf(log)) === 'critical');
  await waitUntil('deregistered again', 2_000, async () => (await statusOf(log)) === null);
  t.ok(performance.now() - reRegisteredAt >= 500, 'the re-registration was given its full deregisterAfterMs');
});

void t.test('follows the registry: new checks, changed checks, instances without checks, removals', async (t) => {
  const { store, log } = await openRegistryStore(t);
  const targets: string[] = [];
  const prober: Prober = async (c) => {
    targets.push(c.tcp ?? c.http ?? '');
    return { isPassing: true, detail: 'ok' };
  };
  const checker = new HealthChecker({ store, proposeLocal: log.propose, clock: systemClock, logger: silentLogger, prober });
  t.teardown(() => checker.close());
  await log.ok(registerCommand({ ...base, id: 'plain', check: undefined as never }));
  checker.setLeader(true);
  await sleep(150);
  t.equal(checker.stats().targets, 0, 'an instance without a check is not probed');
  await log.ok(registerCommand(base));
  await waitUntil('one target', 1_000, () => checker.stats().targets === 1);
  await log.ok(registerCommand({ ...base, check: { ...check, tcp: '127.0.0.1:2' } }));
  targets.length = 0;
  await sleep(250);
  t.ok(targets.length > 0 && targets.every((target) => target === '127.0.0.1:2'), 'a changed check probes the new target');
  await log.ok({ kind: 'ext', name: extensionNames.serviceDeregister, body: { service: 'web', id: 'i1' } });
  await waitUntil('no target', 1_000, () => checker.stats().targets === 0);
});

void t.test('concurrent probes are bounded; stopping aborts the probes in flight', async (t) => {
  const { store, log } = await openRegistryStore(t);
  let inFlight = 0;
  let maxInFlight = 0;
  let aborted = 0;
  const prober: Prober = (_check, signal) =>
    new Promise((resolve) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const done = (isPassing: boolean): void => {
        inFlight--;
        resolve({ isPassing, detail: '' });
      };
      const timer = setTimeout(() => done(true), 50);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        aborted++;
        done(false);
      });
    });
  const checker = new HealthChecker({ store, proposeLocal: log.propose, clock: systemClock, logger: silentLogger, prober, probesInFlightMax: 3 });
  t.teardown(() => checker.close());
  for (let i = 0; i < 12; i++) await log.ok(registerCommand({ ...base, id: `i${i}` }));
  checker.setLeader(true);
  await sleep(400);
  t.equal(maxInFlight, 3, 'never more than probesInFlightMax probes at once');
  t.equal(checker.stats().targets, 12);
  checker.setLeader(false);
  await sleep(20);
  t.ok(aborted >= 1, `probes in flight were aborted (${aborted})`);
  t.equal(inFlight, 0);
});

void t.test('network probes: HTTP 2xx passes, 500 fails, a hung server times out; TCP connect and refused', async (t) => {
  let status = 200;
  let hang = false;
  const server = http.createServer((_request, response) => {
    if (hang) return; // never answers
    response.statusCode = status;
    response.end('x');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const port = (server.address() as net.AddressInfo).port;
  const prober = new NetworkProber();
  t.teardown(() => prober.close());
  const signal = new AbortController().signal;
  const httpCheck: HealthCheck = { http: `http://127.0.0.1:${port}/health`, intervalMs: 1000, timeoutMs: 300 };
  t.same(await prober.probe(httpCheck, signal), { isPassing: true, detail: 'HTTP 200' });
  status = 500;
  t.same(await prober.probe(httpCheck, signal), { isPassing: false, detail: 'HTTP 500' });
  hang = true;
  const started = performance.now();
  const hung = await prober.probe(httpCheck, signal);
  const hungMs = performance.now() - started;
  t.equal(hung.isPassing, false, `a hung server fails (${hung.detail})`);
  t.ok(hungMs >= 250 && hungMs < 1_000, `bounded by timeoutMs (${Math.round(hungMs)} ms)`);

  const tcpCheck: HealthCheck = { tcp: `127.0.0.1:${port}`, intervalMs: 1000, timeoutMs: 300 };
  t.same(await prober.probe(tcpCheck, signal), { isPassing: true, detail: 'connected' });
  const closedPort = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const free = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(free));
    });
  });
  const refused = await prober.probe({ ...tcpCheck, tcp: `127.0.0.1:${closedPort}` }, signal);
  t.same(refused, { isPassing: false, detail: 'ECONNREFUSED' });
  const refusedHttp = await prober.probe({ ...httpCheck, http: `http://127.0.0.1:${closedPort}/` }, signal);
  t.equal(refusedHttp.isPassing, false, `HTTP to a closed port fails (${refusedHttp.detail})`);
});

void t.test('end to end with the network prober: an HTTP-checked instance turns critical, then is removed', async (t) => {
  let status = 200;
  const server = http.createServer((_request, response) => {
    response.statusCode = status;
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const port = (server.address() as net.AddressInfo).port;
  const { store, log } = await openRegistryStore(t);
  const checker = new HealthChecker({ store, proposeLocal: log.propose, clock: systemClock, logger: silentLogger });
  t.teardown(() => checker.close());
  checker.setLeader(true);
  await log.ok(registerCommand({ ...base, check: { http: `http://127.0.0.1:${port}/health`, intervalMs: 100, timeoutMs: 200, deregisterAfterMs: 500 } }));
  await sleep(300);
  t.equal(await statusOf(log), 'passing');
  status = 500;
  const criticalMs = await waitUntil('critical', 2_000, async () => (await statusOf(log)) === 'critical');
  const goneMs = await waitUntil('removed', 2_000, async () => (await statusOf(log)) === null);
  t.comment(`500 → critical in ${Math.round(criticalMs)} ms, then removed ${Math.round(goneMs)} ms later (deregisterAfterMs 500)`);
  t.ok(criticalMs + goneMs >= 450, 'not removed before deregisterAfterMs');
});
