// `keel cluster up`: every node of the config as a child process of this one, each line of their output
// prefixed with the node id. Ctrl-C (or SIGTERM) stops them all gracefully, by PID, and waits for them.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { serverEnv, serverNodeArgs } from './node-options.js';
import { loadConfigOrExit } from './run-node.js';

const stopDeadlineMs = 6_000;
const colours = ['\x1b[36m', '\x1b[33m', '\x1b[35m', '\x1b[32m', '\x1b[34m', '\x1b[31m'];

export async function clusterUp(options: { config: string; logLevel?: string }): Promise<void> {
  const config = loadConfigOrExit(options.config);
  const script = fileURLToPath(new URL('./keel.js', import.meta.url));
  const tty = process.stdout.isTTY;
  const children = new Map<string, ChildProcess>();
  config.nodes.forEach((node, i) => {
    const args = [...serverNodeArgs, script, 'start', '--config', options.config, '--node', node.id, '--pretty'];
    if (options.logLevel !== undefined) args.push('--log-level', options.logLevel);
    // detached: Ctrl-C reaches only this process, which then stops the children in order.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: serverEnv() });
    children.set(node.id, child);
    const prefix = tty ? `${colours[i % colours.length]}[${node.id}]\x1b[0m ` : `[${node.id}] `;
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
    }
    child.on('exit', (code, signal) => {
      process.stdout.write(`${prefix}exited (${signal ?? `code ${code}`})\n`);
      children.delete(node.id);
      if (children.size === 0 && !stopping) process.exit(1);
    });
  });
  process.stdout.write(`keel: started ${config.nodes.length} nodes of cluster "${config.cluster}"; Ctrl-C stops them\n`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('keel: stopping all nodes\n');
    for (const child of children.values()) if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      for (const child of children.values()) if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      process.exit(1);
    }, stopDeadlineMs);
    const poll = setInterval(() => {
      if (children.size > 0) return;
      clearInterval(poll);
      clearTimeout(timer);
      process.exit(0);
    }, 20);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await new Promise<never>(() => {});
}
