// Bootstrapping a new cluster: every founding member writes the same entry at index 1 (term 1), a conf entry
// naming all founding voters, and treats it as committed. Because it sits in the log (not in an initial
// snapshot), a member added later learns the founding membership by replicating it like any other entry.
import type { Entry, HardState, NodeId } from './types.js';

export function bootstrapEntry(voters: readonly NodeId[], context?: Uint8Array): { entry: Entry; hardState: HardState } {
  const change = context === undefined ? { type: 'init' as const, voters } : { type: 'init' as const, voters, context };
  return {
    entry: { type: 'conf', term: 1, index: 1, change },
    hardState: { term: 1, vote: null, commit: 1 },
  };
}
