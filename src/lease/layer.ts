// The lease layer of one node, assembled: the lessor, the lock and election services, the store extensions and
// hooks they contribute (every node's store must be opened with the same ones), and their lifecycle.
//
//   const layer = new LeaseLayer({ clock, logger });
//   const store = await KvStore.open(dir, { extensions: [...layer.extensions, ...], hooks: layer.hooks });
//   await layer.start({ store, raft, propose });   // before the driver applies entries
import type { CommandExtension, StoreHooks } from '../store/index.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import { ElectionService } from './elections.js';
import { Lessor } from './lessor.js';
import { LockService } from './locks.js';
import { touchesReserved } from './prefixes.js';
import type { LeaseRuntime } from './runtime.js';

export interface LeaseLayerOptions {
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly keepaliveBatchMs?: number;
  readonly expiryIntervalMs?: number;
  readonly keepaliveQueueMax?: number;
}

export class LeaseLayer {
  readonly lessor: Lessor;
  readonly locks: LockService;
  readonly elections: ElectionService;
  /** lease.*, lock.* and election.* commands. */
  readonly extensions: readonly CommandExtension[];
  /** leaseExists, lockFence, and userMayWrite (user writes may not touch `_keel/`). */
  readonly hooks: Required<Pick<StoreHooks, 'leaseExists' | 'lockFence' | 'userMayWrite'>>;

  constructor(options: LeaseLayerOptions) {
    const logger = options.logger ?? silentLogger;
    this.lessor = new Lessor({
      clock: options.clock,
      logger,
      ...(options.keepaliveBatchMs !== undefined && { keepaliveBatchMs: options.keepaliveBatchMs }),
      ...(options.expiryIntervalMs !== undefined && { expiryIntervalMs: options.expiryIntervalMs }),
      ...(options.keepaliveQueueMax !== undefined && { keepaliveQueueMax: options.keepaliveQueueMax }),
    });
    this.locks = new LockService({ clock: options.clock, lessor: this.lessor, logger });
    this.elections = new ElectionService(this.locks);
    this.extensions = [...this.lessor.extensions, ...this.locks.extensions];
    this.hooks = {
      ...this.lessor.hooks,
      ...this.locks.hooks,
      userMayWrite: (key, prefix) => !touchesReserved(key, prefix),
    };
  }

  /** Loads the leases of the store and starts the leader loops; call before the driver applies entries. */
  async start(runtime: LeaseRuntime): Promise<void> {
    await this.lessor.start(runtime);
    this.locks.start(runtime);
  }

  /** After the store was restored from a snapshot: reload the lease deadlines (now + ttl) and re-check lock waits. */
  async reload(): Promise<void> {
    await this.lessor.reload();
    this.locks.reconcile();
  }

  async close(): Promise<void> {
    await this.locks.close();
    await this.lessor.close();
  }
}
