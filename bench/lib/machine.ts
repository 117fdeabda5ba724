// Where the benchmark runs: the repository root (results go to bench/results/), and the machine's description
// that goes with every result (a ratio means little without the box it was measured on).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

/** The folder of Keel's package.json, found upward from this file (works from bench/ and from dist/bench/). */
export function repoRoot(): string {
  if (root !== null) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'keel') {
      root = dir;
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the keel package root');
    dir = parent;
  }
}

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  /** File system type of the temp dir that holds both clusters' data (fsync cost depends on it). */
  readonly dataFileSystem: string;
}

const fsTypes: Record<number, string> = { 0xef53: 'ext4', 0x01021994: 'tmpfs', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs' };

export function machineInfo(): MachineInfo {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let dataFileSystem = 'unknown';
  try {
    const type = statfsSync(os.tmpdir()).type;
    dataFileSystem = `${fsTypes[type] ?? `0x${type.toString(16)}`} (${os.tmpdir()})`;
  } catch {
    // statfs unavailable: leave "unknown".
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel: model,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    dataFileSystem,
  };
}

/** The commit the benchmarked Keel was built from ("+changes" when tracked files differ from it), or "unknown". */
export function keelRevision(): string {
  try {
    const git = (...args: string[]): string => execFileSync('git', ['-C', repoRoot(), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const commit = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') === '' ? commit : `${commit}+changes`;
  } catch {
    return 'unknown';
  }
}
