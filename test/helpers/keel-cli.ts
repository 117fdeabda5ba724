// Runs the built CLI (dist/bin/keel.js) as a child process to completion (optionally with stdin): exit code,
// stdout, stderr. A child
// that overruns its timeout is killed by PID and the call rejects.
import { spawn } from 'node:child_process';
import { keelBin } from './cluster.js';

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs `keel ...args`; `input` is written to its stdin (which is then closed; empty by default). */
export function runKeel(args: readonly string[], timeoutMs = 60_000, input = ''): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [keelBin, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`keel ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
    // A child that exits without reading its stdin must not fail the run with EPIPE: its exit code tells.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
