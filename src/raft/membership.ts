// Membership changes, one server at a time: pure functions over ConfState. A change takes effect on a node
// when the node applies its entry (after it is committed); a leader accepts the next change only once the
// previous one and an entry of its own term are applied, so two changes never overlap.
import { KeelError } from '../util/errors.js';
import type { ConfChange, ConfState, NodeId } from './types.js';

export function isVoter(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id);
}

export function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

export function members(conf: ConfState): NodeId[] {
  return [...conf.voters, ...conf.learners];
}

/** Throws CONFLICT / NOT_FOUND for a change that cannot apply to `conf` (checked before it is proposed). */
export function validateConfChange(conf: ConfState, change: ConfChange): void {
  switch (change.type) {
    case 'init':
      throw new KeelError('INVALID_ARGUMENT', 'the bootstrap configuration cannot be proposed');
    case 'addLearner':
      if (isMember(conf, change.id)) throw new KeelError('CONFLICT', `member ${change.id} already exists`);
      return;
    case 'promote':
      if (isVoter(conf, change.id)) throw new KeelError('CONFLICT', `member ${change.id} is already a voter`);
      if (!conf.learners.includes(change.id)) throw new KeelError('NOT_FOUND', `no learner ${change.id}`);
      return;
    case 'remove':
      if (!isMember(conf, change.id)) throw new KeelError('NOT_FOUND', `no member ${change.id}`);
      if (isVoter(conf, change.id) && conf.voters.length === 1) {
        throw new KeelError('CONFLICT', 'cannot remove the last voter');
      }
      return;
  }
}

/** The configuration after `change`. Applying a change that no longer fits (a duplicate) leaves conf as is. */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState {
  switch (change.type) {
    case 'init':
      return { voters: [...change.voters], learners: [] };
    case 'addLearner':
      if (isMember(conf, change.id)) return conf;
      return { voters: conf.voters, learners: [...conf.learners, change.id] };
    case 'promote':
      if (!conf.learners.includes(change.id)) return conf;
      return { voters: [...conf.voters, change.id], learners: conf.learners.filter((id) => id !== change.id) };
    case 'remove':
      return {
        voters: conf.voters.filter((id) => id !== change.id),
        learners: conf.learners.filter((id) => id !== change.id),
      };
  }
}
