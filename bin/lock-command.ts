// `keel lock` and `keel elect`, on KeelClient.
//
// keel lock <name> -- <command...>: waits for the lock, runs the command with KEEL_FENCE (and KEEL_LOCK,
// KEEL_LOCK_KEY) in its environment, releases the lock when the command exits and exits with the command's exit
// code. If the lock is lost while the command runs (its lease could not be kept alive), the command gets SIGTERM,
// then SIGKILL after --grace-ms, and keel exits non-zero (the command's code, or 1 if it exited 0: its work was not
// protected to the end). SIGINT/SIGTERM sent to keel are passed on to the command.
//
// keel elect <name> <value>: campaigns (as long as it takes, unless --wait-ms), prints when elected, stays leader
// until Ctrl-C/SIGTERM and then resigns; exits 1 if leadership is lost.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Command } from 'commander';
import type { KeelClient } from '../src/keel-client.js';
import type { Leadership } from '../src/client/elections.js';
import type { LockHandle } from '../src/client/locks.js';
import { isKeelError } from '../src/util/errors.js';
import { integerAtLeast, note, print, untilStopped, withKeel, type GlobalOptions } from './client-commands.js';

interface LockFlags extends GlobalOptions {
  ttl?: number;
  waitMs?: number;
  graceMs?: number;
}

/** A campaign without --wait-ms waits in rounds of this long (the server caps one wait). */
const campaignRoundMs = 300_000;

interface ChildOutcome {
  readonly exitCode: number;
  readonly isLost: boolean;
}

/** Runs the command while `handle` holds the lock; stops it (TERM, then KILL after graceMs) if the lock is lost. */
function runWhileHeld(handle: LockHandle, argv: readonly string[], graceMs: number, onLost: () => void): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    const [file, ...args] = argv as [string, ...string[]];
    const env = { ...process.env, KEEL_FENCE: String(handle.fence), KEEL_LOCK: handle.name, KEEL_LOCK_KEY: handle.key };
    const child = spawn(file, args, { stdio: 'inherit', env });
    let isLost = false;
    let killTimer: NodeJS.Timeout | null = null;
    let isSettled = false;
    const stopChild = (signal: NodeJS.Signals): void => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), graceMs);
    };
    const lost = (): void => {
      isLost = true;
      onLost();
      stopChild('SIGTERM');
    };
    const onInt = (): void => stopChild('SIGINT');
    const onTerm = (): void => stopChild('SIGTERM');
    const settle = (exitCode: number): void => {
      if (isSettled) return;
      isSettled = true;
      if (killTimer !== null) clearTimeout(killTimer);
      handle.signal.removeEventListener('abort', lost);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve({ exitCode, isLost });
    };
    if (handle.signal.aborted) lost();
    else handle.signal.addEventListener('abort', lost, { once: true });
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    child.on('error', (err) => {
      process.stderr.write(`keel: cannot run ${file}: ${err.message}\n`);
      settle(127);
    });
    child.on('exit', (code, signal) => settle(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))));
  });
}

export async function lockCommand(client: KeelClient, options: LockFlags, name: string, argv: string[]): Promise<void> {
  const waiting = untilStopped();
  let handle: LockHandle;
  try {
    handle = await client.locks.acquire(name, {
      ...(options.ttl !== undefined && { ttl: options.ttl }),
      ...(options.waitMs !== undefined && { waitMs: options.waitMs }),
      signal: waiting.signal,
    });
  } catch (err) {
    if (!waiting.signal.aborted) throw err;
    note(options, { event: 'cancelled', name }, `keel: gave up waiting for lock ${name}`);
    process.exitCode = 130;
    return;
  } finally {
    waiting.dispose();
  }
  note(options, { event: 'acquired', name, fence: handle.fence, key: handle.key }, `keel: acquired lock ${name} (fence ${handle.fence})`);
  const outcome = await runWhileHeld(handle, argv, options.graceMs ?? 5_000, () => {
    const reason = handle.signal.reason as Error;
    note(options, { event: 'lost', name, fence: handle.fence, message: reason.message }, `keel: lock ${name} lost (${reason.message}); stopping the command`);
  });
  await handle.release();
  note(options, { event: 'released', name, fence: handle.fence, exitCode: outcome.exitCode }, `keel: released lock ${name}`);
  process.exitCode = outcome.isLost && outcome.exitCode === 0 ? 1 : outcome.exitCode;
}

async function campaign(client: KeelClient, options: LockFlags, name: string, value: string, signal: AbortSignal): Promise<Leadership | null> {
  for (;;) {
    try {
      return await client.elections.campaign(name, value, {
        ...(options.ttl !== undefined && { ttl: options.ttl }),
        waitMs: options.waitMs ?? campaignRoundMs,
        signal,
      });
    } catch (err) {
      if (signal.aborted) return null;
      if (!(isKeelError(err, 'WAIT_TIMEOUT') && options.waitMs === undefined)) throw err;
    }
  }
}

export async function electCommand(client: KeelClient, options: LockFlags, name: string, value: string): Promise<void> {
  const stop = untilStopped();
  try {
    note(options, { event: 'campaigning', name, value }, `keel: campaigning for ${name} as ${JSON.stringify(value)}`);
    const leadership = await campaign(client, options, name, value, stop.signal);
    if (leadership === null) {
      note(options, { event: 'cancelled', name }, `keel: campaign for ${name} cancelled`);
      process.exitCode = 130;
      return;
    }
    print(options, { event: 'elected', name, value, fence: leadership.fence, leaderKey: leadership.leaderKey }, `elected leader of ${name} (fence ${leadership.fence}); Ctrl-C resigns`);
    const why = await Promise.race([stop.stopped, leadership.lease.lost.then(() => 'lost')]);
    if (why === 'lost') {
      const reason = leadership.signal.reason as Error;
      note(options, { event: 'lost', name, message: reason.message }, `keel: lost leadership of ${name}: ${reason.message}`);
      process.exitCode = 1;
    }
    await leadership.resign();
    if (why !== 'lost') print(options, { event: 'resigned', name }, `resigned leadership of ${name}`);
  } finally {
    stop.dispose();
  }
}

/** `keel lock` and `keel elect`. */
export function registerLockCommands(program: Command): void {
  program
    .command('lock <name>')
    .description('run a command while holding a lock (KEEL_FENCE = its fence); stop it if the lock is lost')
    .argument('<command...>', 'the command and its arguments, after --')
    .option('--ttl <seconds>', 'lock lease TTL: how long the lock outlives a silent holder (default 10)', integerAtLeast(1))
    .option('--wait-ms <ms>', 'give up (exit 1) after waiting this long for the lock (default: the server default, 30 s)', integerAtLeast(0))
    .option('--grace-ms <ms>', 'after SIGTERM, SIGKILL the command if it is still running after this long (default 5000)', integerAtLeast(0))
    .action(withKeel(lockCommand));
  program
    .command('elect <name> <value>')
    .description('campaign; once elected stay leader until Ctrl-C, then resign')
    .option('--ttl <seconds>', 'leadership lease TTL (default 10)', integerAtLeast(1))
    .option('--wait-ms <ms>', 'give up (exit 1) if not elected within this long (default: wait until elected)', integerAtLeast(0))
    .action(withKeel(electCommand));
}
