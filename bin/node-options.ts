// How a Keel server process should be launched for a bounded resident set. `keel cluster up` and the benchmark
// start their nodes this way; README "Memory" gives the same for `keel start` under a service manager.
//
// Both settings only take effect at process start (V8 sizes its heap and glibc its allocator before any of our
// code runs), so they cannot be applied from inside `keel start`.
// - V8: a young generation of 8 MiB semi-spaces instead of 16 MiB (Node 20's default on this machine class).
// - glibc malloc: fixed thresholds. By default freeing one large buffer (a snapshot) raises the mmap threshold
//   to up to 32 MiB and the trim threshold to twice that, for the life of the process: every later buffer below
//   it comes from the heap, and freed memory stays resident. Fixed at 256 KiB / 4 MiB, big buffers are mapped
//   and unmapped, and free memory at the top of the heap goes back to the system. Two arenas instead of 8 per
//   core for LevelDB's and libuv's threads.
// Measured (3-node cluster, puts c1/16/64/256, snapshot every 10,000 entries): leader RSS after the load
// 363-373 MiB without, 188 MiB with both; no CPU-per-entry difference outside the noise in bench/store-apply.
// - --expose-gc: lets the node run one full collection when it goes idle after a burst (src/util/idle-gc.ts),
//   which gives back the old-generation space the burst filled with garbage.

/** Arguments for `node` ahead of the script. */
export const serverNodeArgs: readonly string[] = ['--max-semi-space-size=8', '--expose-gc'];

/** Environment for the server process; a variable already set by the user wins. */
export function serverEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '262144', MALLOC_TRIM_THRESHOLD_: '4194304', ...base };
}
