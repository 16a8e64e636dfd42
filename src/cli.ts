import { Command, InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import { Agent } from './agent.js';
import { renderBootstrap } from './envoy/bootstrap.js';
import { createLogger } from './log.js';
import { DEFAULT_SOCKET_PATH } from './xds/server.js';

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('want a port number 0-65535');
  return n;
}

const program = new Command('sluice').description('Sidecar-less service mesh agent: xDS for the node\'s Envoy, eBPF datapath, SPIFFE identity');

program
  .command('bootstrap')
  .description('print the bootstrap for this node\'s Envoy')
  .option('--node <name>', 'node id (the Kubernetes node name)', process.env.NODE_NAME ?? 'sluice-node')
  .addOption(new Option('--ads <flavour>', 'ADS protocol').choices(['sotw', 'delta']).default('sotw'))
  .option('--socket <path>', 'the agent\'s xDS unix socket', DEFAULT_SOCKET_PATH)
  .option('--admin-port <port>', 'Envoy admin port on 127.0.0.1', port, 9901)
  .addOption(new Option('-o, --output <format>').choices(['yaml', 'json']).default('yaml'))
  .action((o) => {
    const b = renderBootstrap({ nodeId: o.node, ads: o.ads, socketPath: o.socket, adminPort: o.adminPort });
    process.stdout.write(o.output === 'json' ? JSON.stringify(b, null, 2) + '\n' : stringify(b));
  });

program
  .command('agent')
  .description('serve xDS to the node\'s Envoy')
  .requiredOption('--resources <dir>', 'directory of Envoy resources (YAML/JSON with @type), watched for changes')
  .option('--socket <path>', 'unix socket to serve xDS on', DEFAULT_SOCKET_PATH)
  .option('--tcp <host:port>', 'also serve xDS over TCP, e.g. 127.0.0.1:18000')
  .option('--log-level <level>', 'trace, debug, info, warn or error', process.env.SLUICE_LOG_LEVEL ?? 'info')
  .action(async (o) => {
    const log = createLogger(o.logLevel);
    const agent = new Agent({ resourcesDir: o.resources, socketPath: o.socket, tcpAddress: o.tcp, log });
    await agent.start();
    const stop = async (signal: string) => {
      log.info({ signal }, 'stopping');
      await agent.stop();
      process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`sluice: ${e.message}\n`);
  process.exit(1);
});
