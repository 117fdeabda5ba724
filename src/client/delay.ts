// Timers for the client's background loops (watch reconnects, keepalives, blocking queries).

/** Resolves after `ms`, or at once when `signal` aborts (it never rejects: loops check the signal themselves). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** An AbortController that also aborts (with the same reason) when any of `parents` does. */
export function linkedController(...parents: readonly (AbortSignal | undefined)[]): AbortController {
  const controller = new AbortController();
  for (const parent of parents) {
    if (parent === undefined) continue;
    if (parent.aborted) {
      controller.abort(parent.reason);
      break;
    }
    const onAbort = (): void => controller.abort(parent.reason);
    parent.addEventListener('abort', onAbort, { once: true });
    controller.signal.addEventListener('abort', () => parent.removeEventListener('abort', onAbort), { once: true });
  }
  return controller;
}
