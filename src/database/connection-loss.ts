/**
 * Whether an error means the database connection died under us (the server restarted, a
 * proxy or an operator ended the session, the network dropped). That is not a bug in
 * outageless or a component: the CLI reports it with its own code and the way to resume.
 *
 * @example
 * ```ts
 * if (isConnectionLoss(error)) throw errors.connectionLost(error)
 * ```
 */
export function isConnectionLoss(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 6; depth++) {
    const code = (current as { code?: unknown }).code;
    // 57P01-57P03: admin shutdown, crash shutdown, cannot connect now; 08xxx: connection exceptions.
    if (typeof code === 'string' && (/^57P0[123]$/.test(code) || /^08/.test(code) || code === 'ECONNRESET' || code === 'EPIPE')) return true;
    if (/Connection terminated|connection (was )?(closed|lost)|Client has encountered a connection error/i.test(current.message)) return true;
    current = (current as { cause?: unknown }).cause as Error;
  }
  return false;
}
