// `keel start`: one node in the foreground. Logs with pino (JSON, or pretty on a terminal); SIGTERM/SIGINT stop
// it gracefully (stop accepting, hand over leadership, flush, close LevelDB) and exit 0 within 5 s.
import pino, { type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';
import { ConfigError, loadClusterConfig, splitHostPort } from '../src/config.js';
import type { KeelNode } from '../src/node.js';
import { systemClock } from '../src/util/clock.js';
import { startIdleGc } from '../src/util/idle-gc.js';
import type { Logger } from '../src/util/logger.js';

const shutdownDeadlineMs = 5_000;

export function makeLogger(level: string, prettyOutput: boolean): PinoLogger {
  const options = { level, base: { pid: process.pid } };
  if (prettyOutput) return pino(options, pretty({ colorize: process.stdout.isTTY, sync: true, singleLine: true, ignore: 'pid,hostname' }));
  return pino(options, pino.destination({ sync: false }));
}

export function loadConfigOrExit(file: string): ReturnType<typeof loadClusterConfig> {
  try {
    return loadClusterConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`keel: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

export async function runNode(options: { config: string; node: string; logLevel?: string; pretty?: boolean; join?: string }): Promise<void> {
  const config = loadConfigOrExit(options.config);
  if (!config.nodes.some((n) => n.id === options.node)) {
    process.stderr.write(`keel: ${options.config}: field "nodes" has no node with id "${options.node}"\n`);
    process.exit(2);
  }
  // Loaded only now: a bad config is refused without loading the server (fastify, LevelDB, ...), and the
  // `cluster up` supervisor, which shares loadConfigOrExit, never loads it at all.
  const { createNode } = await import('../src/node.js');
  const root = makeLogger(options.logLevel ?? config.log.level, options.pretty ?? process.stdout.isTTY);
  const logger = root as unknown as Logger;
  const startedAt = performance.now();
  let node: KeelNode | null = null;
  // Replaced by a graceful stop once the node serves; before that, removal just ends the process.
  let onRemoved = (reason: string): void => {
    root.warn({ reason }, 'removed from the cluster: exiting');
    root.flush();
    process.exit(0);
  };
  const fatal = (err: unknown): void => {
    root.fatal({ err }, 'node stopped on a fatal error');
    root.flush();
    process.exit(1);
  };
  try {
    const join = (options.join ?? '').split(',').map((e) => e.trim()).filter((e) => e !== '');
    node = await createNode(config, options.node, { clock: systemClock, logger, onFatal: fatal, join, onRemoved: (reason) => onRemoved(reason) });
  } catch (err) {
    fatal(err);
    return;
  }
  const { host, port } = splitHostPort(node.config.client);
  await node.api.listen({ host, port });
  root.info({ client: node.config.client, peer: node.config.peer, startMs: Math.round(performance.now() - startedAt) }, 'node serving');
  // Memory back after a burst (src/util/idle-gc.ts); only when node runs with --expose-gc (bin/node-options.ts).
  const idleGc = startIdleGc({ logger });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    root.info({ signal }, 'stopping');
    const timer = setTimeout(() => {
      root.error({}, 'graceful stop took too long; exiting');
      process.exit(1);
    }, shutdownDeadlineMs);
    timer.unref();
    idleGc?.stop();
    node!
      .close()
      .then(() => {
        root.info({}, 'stopped');
        root.flush();
        process.exit(0);
      })
      .catch(fatal);
  };
  // Removed from the cluster: stop like on SIGTERM (exit 0); <dataDir>/removed keeps it from starting again.
  onRemoved = (reason: string): void => {
    root.warn({ reason }, 'removed from the cluster: stopping');
    stop('removed');
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
