// Operations routes (issue 8: backup and space): GET /v1/snapshot streams a consistent backup of the store;
// POST /v1/maintenance/defrag compacts this node's LevelDB online and measures the store again (clearing the
// NOSPACE alarm once it is back under the quota). Both are admin operations: when auth exists, this plugin is
// the one place to require the admin role.
import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { BackupHeader } from '../../store/index.js';

export interface DefragResult {
  readonly beforeBytes: number;
  readonly afterBytes: number;
  readonly durationMs: number;
  readonly alarms: readonly string[];
}

export interface OperationsBackend {
  /** Resolves once this node may serve a linearizable read (ReadIndex confirmed and applied). */
  readBarrier(): Promise<void>;
  /** A point-in-time backup of this node's store, produced as it is read. */
  openBackup(): Promise<{ header: BackupHeader; chunks: AsyncGenerator<Buffer> }>;
  defrag(): Promise<DefragResult>;
}

const snapshotQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { consistency: { type: 'string', enum: ['linearizable', 'serializable'] } },
} as const;

export const operationsRoutes: FastifyPluginAsync<{ backend: OperationsBackend }> = async (app, opts) => {
  const backend = opts.backend;

  // Linearizable by default: the backup holds every write acknowledged before the request. `serializable`
  // backs up this node's applied state without asking the leader (a survivor of a lost quorum, see README).
  app.get<{ Querystring: { consistency?: 'linearizable' | 'serializable' } }>(
    '/v1/snapshot',
    { schema: { querystring: snapshotQuerySchema } },
    async (request, reply) => {
      if (request.query.consistency !== 'serializable') await backend.readBarrier();
      const { header, chunks } = await backend.openBackup();
      // Readable.from pulls a chunk only when the socket drained the last (backpressure); a client that goes
      // away destroys it, which ends the generator and releases the LevelDB snapshot.
      const body = Readable.from(chunks, { objectMode: false });
      return reply
        .type('application/octet-stream')
        .header('X-Keel-Revision', String(header.revision))
        .header('X-Keel-Backup', JSON.stringify(header))
        .header('Content-Disposition', `attachment; filename="keel-${header.cluster}-${header.revision}.snapshot"`)
        .send(body);
    },
  );

  app.post('/v1/maintenance/defrag', async (_request, reply) => reply.send(await backend.defrag()));
};
