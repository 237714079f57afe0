import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { fastifyCookie as cookie } from '@fastify/cookie';

/**
 * The admin session: a signed cookie issued at login. Both the admin area and the guard
 * (a component in post-install serves admins only) read it, so its format lives here.
 */
export interface AdminSession {
  /** Key the cookie plugin signs with. */
  readonly cookieKey: string;
  readonly cookieName: string;
  readonly maxAgeSeconds: number;
  /** A fresh session value to sign into the cookie. */
  issue(): string;
  /** True when the request carries a valid, unexpired session cookie. */
  isAdmin(request: FastifyRequest): boolean;
}

const SESSION_HOURS = 8;

export function createAdminSession(adminSecret: string | undefined): AdminSession {
  // Without a configured secret nobody can log in; the key still signs cookies consistently.
  const cookieKey = createHash('sha256').update(`outageless-admin:${adminSecret ?? randomBytes(32).toString('hex')}`).digest('hex');
  const cookieName = 'outageless_admin';
  return {
    cookieKey,
    cookieName,
    maxAgeSeconds: SESSION_HOURS * 3600,
    issue: () => `admin.${Date.now()}.${randomBytes(8).toString('hex')}`,
    isAdmin(request) {
      if (!adminSecret) return false;
      const header = request.headers.cookie;
      if (!header) return false;
      const value = cookie.parse(header)[cookieName];
      if (!value) return false;
      const unsigned = cookie.unsign(value, cookieKey);
      if (!unsigned.valid) return false;
      const issued = Number(unsigned.value.split('.')[1]);
      return Number.isFinite(issued) && Date.now() - issued < SESSION_HOURS * 3_600_000;
    },
  };
}
