// Runs the policy TC attacher (from dist/, so `npm run build` first) in the
// namespace it is started in, the way the agent runs it in the node's.
// Prints "ready" after the first sync and errors as they come.
import { TcAttacher } from '../../dist/redirect/tc-attach.js';

const [pinDir, objectPath] = process.argv.slice(2);
const attacher = new TcAttacher({ pinDir, objectPath, intervalMs: 200, onError: (m) => console.error(`attacher: ${m}`) });
await attacher.start();
console.log(JSON.stringify({ ready: true, adopted: [...attacher.adopted] }));
