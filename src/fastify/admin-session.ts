import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { fastifyCookie as cookie, type CookieSerializeOptions } from '@fastify/cookie';
import { sql, type Kysely } from 'kysely';

/**
 * The admin session: a signed cookie issued at login that names a row of
 * `outageless_admin_session` in the site database. The row is what makes the cookie count:
 * logout deletes it, so a saved copy of the cookie stops working on every front, and a row
 * records which admin secret it was issued under, so a change of secret revokes every session.
 * Both the admin area and the guard (a component in post-install serves admins only) read
 * it, so its format lives here.
 */
export interface AdminSession {
  /** Key the cookie plugin signs with (derived from the admin secret). */
  readonly cookieKey: string;
  readonly cookieName: string;
  readonly maxAgeSeconds: number;
  /**
   * Records a new session and returns the cookie value to sign into the cookie. Sessions of
   * another admin secret and expired ones are deleted on the way.
   */
  start(): Promise<LiveAdminSession & { readonly cookieValue: string }>;
  /**
   * The live session the request's cookie names: signed with this front's key, issued in the
   * past (not more than {@link CLOCK_SKEW_MS} ahead of this clock), and still in the database
   * under this admin secret, unexpired. Undefined otherwise, and when the database cannot say.
   */
  resolve(request: FastifyRequest): Promise<LiveAdminSession | undefined>;
  /** True when the request carries a live session (see {@link AdminSession.resolve}). */
  isAdmin(request: FastifyRequest): Promise<boolean>;
  /** Deletes the session's row: its cookie no longer opens anything, on any front. */
  end(session: LiveAdminSession): Promise<void>;
  /**
   * True when the request came over HTTPS: directly, through Fastify's own `trustProxy`, or
   * (with the plugin's `trustProxy` option) as the proxy's `X-Forwarded-Proto` says.
   */
  isSecure(request: FastifyRequest): boolean;
  /** Attributes of the session cookie for this request (`Secure` when {@link AdminSession.isSecure}). */
  cookieOptions(request: FastifyRequest): CookieSerializeOptions;
}

/** A session that is in the database and unexpired. */
export interface LiveAdminSession {
  /** The random id the cookie carries; the database keeps only its hash. */
  readonly id: string;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
}

export interface AdminSessionOptions {
  readonly adminSecret: string | undefined;
  /** The site database, holding `outageless_admin_session`. */
  readonly db: Kysely<any>;
  /** Trust `X-Forwarded-Proto` / `X-Forwarded-For` from the proxy in front of this server. */
  readonly trustProxy?: boolean;
  /** Told when the database cannot be asked (the request then counts as anonymous). */
  readonly onError?: (error: unknown) => void;
}

const SESSION_HOURS = 8;

/**
 * How far a cookie's issue time may be ahead of this front's clock (fronts on other hosts
 * may run a little fast). Anything further ahead is a forgery or a broken clock: refused.
 */
export const CLOCK_SKEW_MS = 30_000;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The first or last value of a possibly repeated, comma-separated forwarding header. */
function forwarded(value: string | string[] | undefined, which: 'first' | 'last'): string | undefined {
  const joined = Array.isArray(value) ? value.join(',') : value;
  const parts = joined?.split(',').map((part) => part.trim()).filter(Boolean) ?? [];
  return which === 'first' ? parts[0] : parts.at(-1);
}

/**
 * The client address a request counts against (the login rate limit): Fastify's `request.ip`
 * (which already follows `X-Forwarded-For` under Fastify's own `trustProxy`), or with the
 * plugin's `trustProxy` the address the proxy appended last, the one it saw connect.
 *
 * @example
 * ```ts
 * clientAddress(request, true) // '203.0.113.7' for X-Forwarded-For: 10.0.0.1, 203.0.113.7
 * ```
 */
export function clientAddress(request: FastifyRequest, trustProxy: boolean): string {
  return (trustProxy ? forwarded(request.headers['x-forwarded-for'], 'last') : undefined) ?? request.ip;
}

/**
 * Creates the admin session of one front. Without a configured secret nobody can log in; the
 * key still signs cookies consistently.
 *
 * @example
 * ```ts
 * const session = createAdminSession({ adminSecret: process.env.OUTAGELESS_ADMIN_SECRET, db: database.db })
 * const live = await session.start()
 * reply.setCookie(session.cookieName, live.cookieValue, { ...session.cookieOptions(request), signed: true })
 * if (await session.isAdmin(request)) { ... }
 * ```
 */
export function createAdminSession(options: AdminSessionOptions): AdminSession {
  const { adminSecret, db } = options;
  const trustProxy = options.trustProxy ?? false;
  const cookieKey = sha256(`outageless-admin:${adminSecret ?? randomBytes(32).toString('hex')}`);
  // Stored with each row: a hash of the key's fingerprint, never the secret or the key.
  const secretFingerprint = sha256(`outageless-admin-session:${sha256(cookieKey)}`);
  const cookieName = 'outageless_admin';
  const maxAgeMs = SESSION_HOURS * 3_600_000;

  const isSecure = (request: FastifyRequest) =>
    request.protocol === 'https' || (trustProxy && forwarded(request.headers['x-forwarded-proto'], 'first')?.toLowerCase() === 'https');

  /** The id and issue time a validly signed, current cookie carries. */
  const parseCookie = (request: FastifyRequest): { id: string; issued: number } | undefined => {
    const header = request.headers.cookie;
    if (!header) return undefined;
    const value = cookie.parse(header)[cookieName];
    if (!value) return undefined;
    const unsigned = cookie.unsign(value, cookieKey);
    if (!unsigned.valid || unsigned.value === null) return undefined;
    const [kind, issuedText, id, ...rest] = unsigned.value.split('.');
    if (kind !== 'admin' || rest.length > 0 || !id || !/^[0-9a-f]{64}$/.test(id)) return undefined;
    const issued = Number(issuedText);
    const now = Date.now();
    if (!Number.isSafeInteger(issued) || issued > now + CLOCK_SKEW_MS || now - issued >= maxAgeMs) return undefined;
    return { id, issued };
  };

  const resolve = async (request: FastifyRequest): Promise<LiveAdminSession | undefined> => {
    if (!adminSecret) return undefined;
    const parsed = parseCookie(request);
    if (!parsed) return undefined;
    try {
      const { rows } = await sql<{ created_at: Date; expires_at: Date }>`
        select created_at, expires_at from outageless_admin_session
        where id = ${sha256(parsed.id)} and secret_fingerprint = ${secretFingerprint} and expires_at > ${new Date()}`.execute(db);
      const row = rows[0];
      // The cookie's issue time is the row's: a re-signed cookie with another time is not this session.
      if (!row || new Date(row.created_at).getTime() !== parsed.issued) return undefined;
      return { id: parsed.id, issuedAt: new Date(row.created_at), expiresAt: new Date(row.expires_at) };
    } catch (error) {
      // Fail closed: a front that cannot read the sessions serves nobody as an admin.
      options.onError?.(error);
      return undefined;
    }
  };

  return {
    cookieKey,
    cookieName,
    maxAgeSeconds: maxAgeMs / 1000,
    async start() {
      const id = randomBytes(32).toString('hex');
      const issuedAt = new Date();
      const expiresAt = new Date(issuedAt.getTime() + maxAgeMs);
      await db.transaction().execute(async (trx) => {
        // Sessions issued under another secret are revoked: the secret was changed.
        await sql`delete from outageless_admin_session where secret_fingerprint <> ${secretFingerprint} or expires_at <= ${issuedAt}`.execute(trx);
        await sql`insert into outageless_admin_session (id, secret_fingerprint, created_at, expires_at)
          values (${sha256(id)}, ${secretFingerprint}, ${issuedAt}, ${expiresAt})`.execute(trx);
      });
      return { id, issuedAt, expiresAt, cookieValue: `admin.${issuedAt.getTime()}.${id}` };
    },
    resolve,
    isAdmin: async (request) => (await resolve(request)) !== undefined,
    async end(session) {
      await sql`delete from outageless_admin_session where id = ${sha256(session.id)}`.execute(db);
    },
    isSecure,
    cookieOptions: (request) => ({ httpOnly: true, sameSite: 'strict', path: '/', secure: isSecure(request) }),
  };
}
