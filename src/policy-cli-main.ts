// `sluice endpoint`, `sluice policy` and `sluice observe` alone: bin/sluice.js starts them here,
// without loading the agent, Envoy's protos and the Kubernetes client, so an
// operator's question costs a tenth of the start-up. cli.ts lists them in --help.
import { Command } from 'commander';
import { addObserveCommands } from './observe-cli.js';
import { addPolicyCommands } from './policy-cli.js';

const program = new Command('sluice');
addPolicyCommands(program);
addObserveCommands(program);
program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`sluice: ${e.message}\n`);
  process.exit(1);
});
