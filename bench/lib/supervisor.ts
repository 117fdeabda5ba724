// Every process and temp dir the benchmark makes is registered here, and removed on every way out: normal end,
// a thrown error, Ctrl-C (SIGINT), SIGTERM, SIGHUP. Children are stopped by their own PID only (graceful SIGTERM,
// then SIGKILL after a grace period); the synchronous 'exit' hook SIGKILLs whatever is still alive.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  exited: boolean;
  exitCode: number | null;
}

export class Supervisor {
  private readonly children = new Set<Child>();
  private readonly dirs = new Set<string>();
  private cleaning: Promise<void> | null = null;
  /** Keep temp dirs (and logs) for a post-mortem: --keep. */
  keepDirs = false;

  constructor() {
    const onSignal = (signal: NodeJS.Signals, code: number): void => {
      process.stderr.write(`\nbench: ${signal}: stopping every process the benchmark started...\n`);
      void this.cleanup().finally(() => process.exit(code));
    };
    process.once('SIGINT', () => onSignal('SIGINT', 130));
    process.once('SIGTERM', () => onSignal('SIGTERM', 143));
    process.once('SIGHUP', () => onSignal('SIGHUP', 129));
    process.once('exit', () => this.cleanupSync());
  }

  tempDir(prefix: string): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    this.dirs.add(dir);
    return dir;
  }

  /** Starts a child with stdout and stderr appended to `logFile`. */
  spawn(name: string, command: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): Child {
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(command, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
    const entry: Child = { name, process: child, pid: child.pid, logFile, exited: false, exitCode: null };
    this.children.add(entry);
    child.on('exit', (code) => {
      entry.exited = true;
      entry.exitCode = code;
    });
    child.on('error', () => {
      entry.exited = true;
    });
    return entry;
  }

  /** Stops one child: `signal`, then SIGKILL after `graceMs`. Resolves with its exit code once it is gone. */
  async stop(child: Child, signal: NodeJS.Signals = 'SIGTERM', graceMs = 8_000): Promise<number | null> {
    if (!child.exited) {
      const gone = new Promise<void>((resolve) => child.process.once('exit', () => resolve()));
      try {
        process.kill(child.pid, signal);
      } catch {
        // Already gone (ESRCH): nothing to stop.
      }
      const timer = setTimeout(() => {
        if (!child.exited) process.kill(child.pid, 'SIGKILL');
      }, graceMs);
      await gone;
      clearTimeout(timer);
    }
    this.children.delete(child);
    return child.exitCode;
  }

  /** Prints the last lines of every child's log (after a failure, before the temp dirs go). */
  printLogTails(lines = 15): void {
    for (const child of this.children) {
      let text = '';
      try {
        text = readFileSync(child.logFile, 'utf8');
      } catch {
        continue;
      }
      const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
      process.stderr.write(`---- ${child.name} (pid ${child.pid}) ${child.logFile}\n${tail}\n`);
    }
  }

  async cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      await Promise.all([...this.children].map((child) => this.stop(child, 'SIGKILL', 2_000)));
      this.removeDirs();
    })();
    return this.cleaning;
  }

  private cleanupSync(): void {
    for (const child of this.children) {
      if (child.exited) continue;
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    this.children.clear();
    this.removeDirs();
  }

  private removeDirs(): void {
    for (const dir of this.dirs) {
      if (this.keepDirs) {
        process.stderr.write(`bench: kept ${dir}\n`);
        continue;
      }
      rmSync(dir, { recursive: true, force: true });
    }
    this.dirs.clear();
  }
}

/** Resident set size of a process, from /proc/<pid>/status: current (VmRSS) and peak (VmHWM), in MiB. */
export function residentMemory(pid: number): { rssMiB: number; peakMiB: number } | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kib = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match === null ? Number.NaN : Number(match[1]);
  };
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}
