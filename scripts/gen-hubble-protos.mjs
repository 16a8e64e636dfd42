#!/usr/bin/env node
// Generates TypeScript for Hubble's Observer API into src/gen/hubble
// (git-ignored) from the observer, flow and relay protos that ship in the Go
// module github.com/cilium/cilium.
import { genFromGoModule } from './go-module-protos.mjs';

genFromGoModule({
  name: 'hubble',
  module: 'github.com/cilium/cilium',
  // The same version scripts/install-hubble.sh builds the CLI from, so client and server speak one API.
  version: 'v1.20.2',
  protoRoot: 'api/v1',
  protos: ['observer/observer.proto', 'flow/flow.proto', 'relay/relay.proto'],
  // Flow times carry nanoseconds, which a Date would drop.
  tsProtoOpts: ['useDate=false'],
  // `sluice observe -o json` prints protojson with proto field names, as hubble does.
  descriptors: true,
  caller: import.meta.url,
});
