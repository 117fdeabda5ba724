// Fixtures for the lease layer's unit tests: a store opened with the lessor's and the registry's extensions and
// the lessor's leaseExists hook, and a serial "log" that applies encoded commands one entry at a time (what the
// driver does for committed entries), so several proposers may call it concurrently.
import type { ApplyResult, Command, KvStore } from '../../../src/store/index.js';
import { encodeCommand, isApplyFailure } from '../../../src/store/index.js';
import { Lessor } from '../../../src/lease/lessor.js';
import { registryExtensions } from '../../../src/lease/index.js';
import { systemClock } from '../../../src/util/clock.js';
import { openStore, type TapLike } from '../store/helpers.js';

export class SerialLog {
  private tail: Promise<unknown> = Promise.resolve();
  /** Every command applied through this log, in order. */
  readonly applied: Command[] = [];

  constructor(readonly store: KvStore) {}

  /** Applies an encoded command as the next entry; resolves with its result (what proposeLocal resolves with). */
  propose = (command: Uint8Array): Promise<unknown> => {
    const run = this.tail.then(async () => {
      const index = this.store.appliedIndex() + 1;
      const [result] = await this.store.apply([{ type: 'normal', term: 1, index, data: command }]);
      return result;
    });
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  async run(cmd: Command, requestId = ''): Promise<ApplyResult> {
    this.applied.push(cmd);
    return (await this.propose(encodeCommand({ requestId, cmd }))) as ApplyResult;
  }

  /** Runs a command that must succeed; returns its result. */
  async ok<T = Record<string, unknown>>(cmd: Command): Promise<T & { revision: number }> {
    const result = await this.run(cmd);
    if (isApplyFailure(result)) throw new Error(`${JSON.stringify(cmd)} failed: ${result.error.code} ${result.error.message}`);
    return result as T & { revision: number };
  }
}

export async function openRegistryStore(t: TapLike): Promise<{ store: KvStore; log: SerialLog; lessor: Lessor }> {
  const lessor = new Lessor({ clock: systemClock });
  const { store } = await openStore(t, {
    extensions: [...lessor.extensions, ...registryExtensions(lessor)],
    hooks: { ...lessor.hooks },
  });
  return { store, log: new SerialLog(store), lessor };
}
