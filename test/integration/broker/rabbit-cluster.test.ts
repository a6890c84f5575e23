/**
 * The three-node test cluster (test/support/rabbit-cluster.ts) does what the cluster tests rely on:
 * three running nodes that see each other, one that dies by kill -9 and is seen gone, the same node
 * back and rejoined, and a teardown that leaves no process, directory or port behind. It restarts
 * no shared node: run it under the shared lock (flock -s).
 */
import { existsSync } from 'node:fs';
import { expect } from 'chai';

import { rabbitClusterProcesses, startRabbitCluster, type RabbitCluster } from '../../support/rabbit-cluster';
import { managementGet } from '../../support/rabbitmq';
import { waitFor } from '../../support/wait';

describe('three-node RabbitMQ test cluster', function () {
  this.timeout(240_000);
  let cluster: RabbitCluster | undefined;

  after(async () => {
    await cluster?.stop();
  });

  it('runs three nodes, sees one go on kill -9 and come back, and leaves nothing when stopped', async () => {
    cluster = await startRabbitCluster();
    const names = cluster.nodes.map((n) => n.name).sort();
    expect(names).to.deep.equal(['sr-c1@localhost', 'sr-c2@localhost', 'sr-c3@localhost']);
    expect(await cluster.runningNodes()).to.deep.equal(names);
    for (const node of cluster.nodes) {
      expect(node.version, node.name).to.match(/^\d+\.\d+\./);
      // Every node serves the management API with the whole cluster in it.
      const nodes = await managementGet<{ name: string; running: boolean }[]>('/nodes', node);
      expect(
        nodes
          .filter((n) => n.running)
          .map((n) => n.name)
          .sort(),
        node.name,
      ).to.deep.equal(names);
    }

    const [first, second] = cluster.nodes;
    await cluster.kill9(second!);
    const survivors = names.filter((n) => n !== second!.name);
    await waitFor(
      async () => JSON.stringify(await cluster!.runningNodes(first)) === JSON.stringify(survivors),
      30_000,
      `cluster_status on ${first!.name} to list only ${survivors.join(', ')}`,
    );

    await cluster.restart(second!);
    expect(await cluster.runningNodes(first)).to.deep.equal(names);
    expect(await cluster.runningNodes(second)).to.deep.equal(names);

    const { dir } = cluster;
    // stop() itself waits for every port of the cluster to close (and rejects if one stays open)
    // before it releases the lock: after that, the next test run's cluster may hold the same ports.
    await cluster.stop();
    cluster = undefined;
    expect(rabbitClusterProcesses(dir), 'processes of the cluster').to.deep.equal([]);
    expect(existsSync(dir), dir).to.equal(false);
  });
});
