#!/usr/bin/env node
// The operator tools start without the agent's modules (see src/policy-cli-main.ts).
const tools = new Set(['endpoint', 'policy', 'observe']);
await import(tools.has(process.argv[2]) ? '../dist/policy-cli-main.js' : '../dist/cli.js');
