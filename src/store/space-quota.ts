// The store quota (config `limits.quotaBytes`, etcd's --quota-backend-bytes): each node measures its store
// directory every `checkIntervalMs`; while it is over the quota the NOSPACE alarm is raised and the leader
// refuses every proposal that could add data (put, txn with a put, lease grant, service register, lock acquire,
// proclaim) with 507 NO_SPACE. Reads, deletes, compaction, lease keepalive/revoke and lock release still work, so
// the operator can free space: delete, compact, then defrag (KvStore.defrag) gives the bytes back to the disk;
// the alarm clears at the next measurement under the quota (a defrag measures at once).
//
// Commands are decoded only while the alarm is raised: the write path pays nothing otherwise.
import { KeelError, isKeelError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { decodeCommand } from './codec.js';
import type { Command } from './commands.js';

export interface SpaceQuotaOptions {
  readonly quotaBytes: number;
  readonly checkIntervalMs: number;
  /** Bytes the store takes on disk now. */
  readonly measure: () => Promise<number>;
  /** Extension commands that only free or keep state (lease keepalive/revoke, lock release, ...). */
  readonly allowedExtensions: readonly string[];
  readonly logger: Logger;
}

export const spaceAlarm = 'NOSPACE';

export class SpaceQuota {
  private sizeBytes = 0;
  private alarmed = false;
  private timer: NodeJS.Timeout | null = null;
  private measuring: Promise<number> | null = null;

  constructor(private readonly options: SpaceQuotaOptions) {}

  get quotaBytes(): number {
    return this.options.quotaBytes;
  }

  /** The store size at the last measurement. */
  get storeSizeBytes(): number {
    return this.sizeBytes;
  }

  isAlarmed(): boolean {
    return this.alarmed;
  }

  alarms(): string[] {
    return this.alarmed ? [spaceAlarm] : [];
  }

  /** Measures now and starts measuring every checkIntervalMs. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => {
      this.check().catch((err: unknown) => this.options.logger.warn({ err }, 'measuring the store size failed'));
    }, this.options.checkIntervalMs);
    this.timer.unref();
  }

  /** Measures the store and raises or clears the alarm; concurrent calls share one measurement. */
  async check(): Promise<number> {
    this.measuring ??= this.options.measure().finally(() => {
      this.measuring = null;
    });
    const size = await this.measuring;
    this.sizeBytes = size;
    const over = size > this.options.quotaBytes;
    if (over !== this.alarmed) {
      this.alarmed = over;
      const fields = { sizeBytes: size, quotaBytes: this.options.quotaBytes };
      if (over) this.options.logger.warn(fields, 'store over its quota: NOSPACE alarm raised, writes refused');
      else this.options.logger.info(fields, 'store back under its quota: NOSPACE alarm cleared');
    }
    return size;
  }

  /** Throws NO_SPACE if the alarm is raised and `command` could add data. */
  guard(command: Uint8Array): void {
    if (!this.alarmed) return;
    let cmd: Command;
    try {
      cmd = decodeCommand(command).cmd;
    } catch (err) {
      if (isKeelError(err)) return; // apply refuses it deterministically; it adds nothing
      throw err;
    }
    if (this.freesSpace(cmd)) return;
    throw new KeelError('NO_SPACE', `the store (${this.sizeBytes} bytes) is over its quota of ${this.options.quotaBytes} bytes: delete keys, compact and defrag`, {
      alarms: this.alarms(),
    });
  }

  private freesSpace(cmd: Command): boolean {
    switch (cmd.kind) {
      case 'deleteRange':
      case 'compact':
        return true;
      case 'txn':
        return [...cmd.success, ...cmd.failure].every((op) => !('put' in op));
      case 'ext':
        return this.options.allowedExtensions.includes(cmd.name);
      case 'put':
        return false;
    }
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
