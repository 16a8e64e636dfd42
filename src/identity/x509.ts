// @peculiar/x509 set up once for the identity room: tsyringe, which it resolves
// its services through, needs the Reflect metadata API, and signing goes
// through Node's WebCrypto.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
