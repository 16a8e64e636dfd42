import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured logs go to stderr so that commands like `sluice translate` keep stdout for their output. */
export function createLogger(level = process.env.SLUICE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: undefined }, pino.destination(2));
}

export const silentLogger: Logger = pino({ level: 'silent' });
