// The xDS server alone in a process of its own, so a test can publish many
// snapshots to it and read its resident memory without counting the client's.
// Driven over IPC: {publish: n} publishes n snapshots, {rss: true} reports memory.
import { anyFromJson } from '../../dist/proto/any.js';
import { silentLogger } from '../../dist/log.js';
import { Snapshot } from '../../dist/xds/snapshot.js';
import { ANY_NODE, SnapshotCache } from '../../dist/xds/snapshot-cache.js';
import { XdsServer } from '../../dist/xds/server.js';

const [socketPath, clusterCount] = [process.argv[2], Number(process.argv[3])];
const T = 'type.googleapis.com/';
const cluster = (i, timeout = 1) => ({
  '@type': `${T}envoy.config.cluster.v3.Cluster`,
  name: `svc-${i}`,
  type: 'EDS',
  connect_timeout: `${timeout}s`,
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
});
const cla = (i, port = 10000 + i) => ({
  '@type': `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`,
  cluster_name: `svc-${i}`,
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
});

const clusters = Array.from({ length: clusterCount }, (_, i) => anyFromJson(cluster(i)));
const loads = Array.from({ length: clusterCount }, (_, i) => anyFromJson(cla(i)));
const cache = new SnapshotCache();
let published = 0;
// Every snapshot changes one cluster and one endpoint set, so every stream has
// something new of both types each time.
function publish() {
  const k = published % clusterCount;
  published++;
  clusters[k] = anyFromJson(cluster(k, 1 + (published % 1000)));
  loads[k] = anyFromJson(cla(k, 20000 + (published % 30000)));
  return cache.setSnapshot(ANY_NODE, Snapshot.fromAnys([...clusters, ...loads]));
}
let version = publish();
const server = new XdsServer({ cache, log: silentLogger, socketPath });
await server.start();

const rss = () => {
  globalThis.gc?.();
  return process.memoryUsage().rss;
};
process.on('message', async (m) => {
  if (m.publish) {
    // In batches, yielding between them, as a busy agent would: the streams get to run.
    for (let i = 0; i < m.publish; i++) {
      version = publish();
      if (i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    process.send({ version, rss: rss() });
  } else if (m.rss) process.send({ version, rss: rss() });
  else if (m.stop) {
    await server.stop();
    process.exit(0);
  }
});
process.send({ ready: true, version, rss: rss() });
