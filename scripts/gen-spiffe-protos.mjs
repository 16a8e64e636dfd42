#!/usr/bin/env node
// Generates TypeScript for the SPIFFE Workload API into src/gen/spiffe
// (git-ignored) from the workload.proto that ships in the Go module
// github.com/spiffe/go-spiffe/v2.
import { genFromGoModule } from './go-module-protos.mjs';

genFromGoModule({
  name: 'spiffe',
  module: 'github.com/spiffe/go-spiffe/v2',
  version: 'v2.9.0',
  protoRoot: 'proto/spiffe/workload',
  protos: ['workload.proto'],
  caller: import.meta.url,
});
