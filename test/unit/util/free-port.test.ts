// Goal: the test helper's freePort() hands out distinct ports that can be bound, outside Linux's ephemeral range
// (so no other test's outgoing connection or listen(0) can take a port between the pick and the node's bind).
// Method: take 50 ports, check each is new, in 20000-32767, and bindable on 127.0.0.1.
import net from 'node:net';
import t from 'tap';
import { freePort } from '../../helpers/cluster.js';

void t.test('freePort: distinct, bindable ports below the ephemeral range', async (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 50; i++) ports.push(await freePort());
  t.equal(new Set(ports).size, 50, 'never the same port twice');
  t.ok(ports.every((p) => p >= 20_000 && p <= 32_767), 'all in 20000-32767');
  for (const port of ports.slice(0, 5)) {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    t.equal((server.address() as net.AddressInfo).port, port, `port ${port} binds`);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
