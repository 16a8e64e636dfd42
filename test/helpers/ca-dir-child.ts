// One "agent" for the shared-dir race: loads or creates the CA in argv[2] and
// prints its bundle, so the test can compare what separate processes ended with.
import { SpiffeCa } from '../../src/identity/ca.js';

const ca = await SpiffeCa.loadOrCreate({ trustDomain: 'example.org', dir: process.argv[2] });
process.stdout.write(JSON.stringify(ca.bundle()));
