// Majority arithmetic over the voters of one configuration.
import type { Index, NodeId } from './types.js';

export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** The highest index acknowledged by a majority of voters (0 when there are no voters). */
export function committedIndex(voters: readonly NodeId[], matchIndexOf: (id: NodeId) => Index): Index {
  if (voters.length === 0) return 0;
  const matched = voters.map(matchIndexOf).sort((a, b) => b - a);
  return matched[majority(voters.length) - 1] ?? 0;
}

export type VoteResult = 'won' | 'lost' | 'pending';

export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const needed = majority(voters.length);
  if (granted >= needed) return 'won';
  if (rejected > voters.length - needed) return 'lost';
  return 'pending';
}
