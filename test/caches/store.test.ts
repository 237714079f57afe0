/**
 * The in-process cache store, cache definitions and purges, in-process: TTL, LRU, revision
 * invalidation (one component, or all of them), request scopes, definitions from db/caches.ts,
 * and a real front on the embedded database whose caches a purge reaches.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { cacheStoreFromDefinitions, type CacheRevisions } from '../../src/caches/store.ts';
import { defineCaches, loadSiteCacheDefinitions, type CacheDefinitions } from '../../src/caches/definitions.ts';
import { attachCaches } from '../../src/caches/front.ts';
import { purgeCaches, purgePlannedCaches } from '../../src/caches/purge.ts';
import { discoverSite } from '../../src/component/discover.ts';
import { openDatabase, type SiteDatabase } from '../../src/database/open.ts';
import { isOutagelessError } from '../../src/errors.ts';
import { startFront, type Front } from '../../src/runtime/front.ts';
import { readCacheRevisions } from '../../src/state/cache-revisions.ts';
import { readFlags } from '../../src/state/flags.ts';
import { createSiteDir, RELEASES, type SiteDir } from '../support/sites.ts';

/** A store over fixed definitions, with revisions and a clock the test moves. */
function harness(definitions: Record<string, CacheDefinitions>) {
  let clock = 1_000_000;
  let global = 0;
  const components = new Map<string, number>();
  const revisions = (): CacheRevisions => ({ global, components });
  const store = cacheStoreFromDefinitions(new Map(Object.entries(definitions)), { revisions, now: () => clock });
  return {
    store,
    advance: (ms: number) => (clock += ms),
    bumpGlobal: () => global++,
    bump: (component: string) => components.set(component, (components.get(component) ?? 0) + 1),
  };
}

const DEFINITIONS = {
  mod_assign: defineCaches({
    grades: { mode: 'application' },
    short: { mode: 'application', ttlSeconds: 10 },
    small: { mode: 'application', maxEntries: 2 },
    perrequest: { mode: 'request' },
  }),
  local_reports: { report_cache: { mode: 'application' } },
} satisfies Record<string, CacheDefinitions>;

describe('cache store', () => {
  it('gets, sets and deletes', () => {
    const { store } = harness(DEFINITIONS);
    const grades = store.cache<number>('mod_assign', 'grades');
    expect(grades.get('u1')).toBeUndefined();
    grades.set('u1', 7);
    expect(grades.get('u1')).toBe(7);
    expect(store.cache('mod_assign', 'grades')).toBe(grades);
    expect(grades.delete('u1')).toBe(true);
    expect(grades.delete('u1')).toBe(false);
    expect(grades.get('u1')).toBeUndefined();
  });

  it('expires entries after ttlSeconds', () => {
    const { store, advance } = harness(DEFINITIONS);
    const short = store.cache('mod_assign', 'short');
    short.set('k', 'v');
    advance(9_999);
    expect(short.get('k')).toBe('v');
    advance(1);
    expect(short.get('k')).toBeUndefined();
  });

  it('keeps at most maxEntries, evicting the least recently used', () => {
    const { store } = harness(DEFINITIONS);
    const small = store.cache('mod_assign', 'small');
    small.set('a', 1);
    small.set('b', 2);
    expect(small.get('a')).toBe(1); // touches a: b is now the oldest
    small.set('c', 3);
    expect(small.get('b')).toBeUndefined();
    expect(small.get('a')).toBe(1);
    expect(small.get('c')).toBe(3);
  });

  it('drops only that component\'s entries when its revision moves', () => {
    const { store, bump } = harness(DEFINITIONS);
    const grades = store.cache('mod_assign', 'grades');
    const short = store.cache('mod_assign', 'short');
    const reports = store.cache('local_reports', 'report_cache');
    grades.set('k', 1);
    short.set('k', 2);
    reports.set('k', 3);
    bump('mod_assign');
    expect(grades.get('k')).toBeUndefined();
    expect(short.get('k')).toBeUndefined();
    expect(reports.get('k')).toBe(3);
    grades.set('k', 4); // built under the new revision: kept
    expect(grades.get('k')).toBe(4);
  });

  it('drops every component\'s entries when the global revision moves', () => {
    const { store, bumpGlobal } = harness(DEFINITIONS);
    store.cache('mod_assign', 'grades').set('k', 1);
    store.cache('local_reports', 'report_cache').set('k', 2);
    bumpGlobal();
    expect(store.cache('mod_assign', 'grades').get('k')).toBeUndefined();
    expect(store.cache('local_reports', 'report_cache').get('k')).toBeUndefined();
  });

  it('getOrLoad shares one load per key, and does not store a value loaded across a purge', async () => {
    const { store, bump } = harness(DEFINITIONS);
    const grades = store.cache<number>('mod_assign', 'grades');
    let loads = 0;
    const [a, b] = await Promise.all([
      grades.getOrLoad('k', async () => ++loads),
      grades.getOrLoad('k', async () => ++loads),
    ]);
    expect([a, b, loads]).toEqual([1, 1, 1]);
    expect(await grades.getOrLoad('k', () => ++loads)).toBe(1);

    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = grades.getOrLoad('slow', async () => {
      await gate;
      return 42;
    });
    bump('mod_assign');
    release();
    expect(await slow).toBe(42);
    expect(grades.get('slow')).toBeUndefined();
  });

  it('keeps request caches for one request scope only', async () => {
    const { store } = harness(DEFINITIONS);
    const perRequest = store.cache<string>('mod_assign', 'perrequest');
    perRequest.set('k', 'outside');
    expect(perRequest.get('k')).toBeUndefined(); // no scope: nothing is retained
    await store.runInRequest(async () => {
      perRequest.set('k', 'first');
      await new Promise((resolve) => setTimeout(resolve, 1));
      expect(perRequest.get('k')).toBe('first');
    });
    store.runInRequest(() => expect(perRequest.get('k')).toBeUndefined());
  });

  it('opens a request scope per Fastify request with requestHook', async () => {
    const { store } = harness(DEFINITIONS);
    const app = Fastify();
    app.addHook('onRequest', store.requestHook);
    app.get('/', async () => {
      const cache = store.cache<number>('mod_assign', 'perrequest');
      const seen = cache.get('count') ?? 0;
      cache.set('count', seen + 1);
      await new Promise((resolve) => setTimeout(resolve, 1));
      return { seen, now: cache.get('count') };
    });
    try {
      expect((await app.inject('/')).json()).toEqual({ seen: 0, now: 1 });
      expect((await app.inject('/')).json()).toEqual({ seen: 0, now: 1 });
    } finally {
      await app.close();
    }
  });

  it('refuses an undeclared cache with a typed error naming component and cache', () => {
    const { store } = harness(DEFINITIONS);
    let caught: unknown;
    try {
      store.cache('mod_assign', 'nope');
    } catch (error) {
      caught = error;
    }
    expect(isOutagelessError(caught, 'OUTAGELESS_ERR_UNKNOWN_CACHE')).toBe(true);
    expect((caught as Error).message).toContain('mod_assign declares no cache "nope" (declared: grades, short, small, perrequest)');
    expect(() => store.cache('mod_quiz', 'grades')).toThrow(/declared: none/);
    expect(() => store.cache('mod_assign', 'toString')).toThrow(/no cache "toString"/);
  });
});

describe('db/caches.ts', () => {
  let site: SiteDir;
  beforeAll(async () => {
    site = await createSiteDir(3);
  });
  afterAll(() => site?.cleanup());

  it('loads plain objects and defineCaches alike', async () => {
    const definitions = await loadSiteCacheDefinitions(await discoverSite(join(RELEASES, '3')));
    expect(definitions.get('local_reports')).toEqual({ report_cache: { mode: 'application' } });
    expect(definitions.get('mod_assign')).toEqual({});

    await site.write('plugins/mod/assign/db/caches.ts', `import { defineCaches } from 'outageless';\nexport default defineCaches({ grades: { mode: 'application', ttlSeconds: 60, maxEntries: 100, description: 'Grades' } });\n`);
    const withAssign = await loadSiteCacheDefinitions(await discoverSite(site.root));
    expect(withAssign.get('mod_assign')).toEqual({ grades: { mode: 'application', ttlSeconds: 60, maxEntries: 100, description: 'Grades' } });
  });

  it('rejects a bad definition with a typed error naming file, component, cache and fix', async () => {
    await site.write('plugins/mod/assign/db/caches.ts', `export default { grades: { mode: 'session' } };\n`);
    const error = await loadSiteCacheDefinitions(await discoverSite(site.root)).catch((e: unknown) => e);
    expect(isOutagelessError(error, 'OUTAGELESS_ERR_CACHE_DEFINITION')).toBe(true);
    const described = (error as import('../../src/errors.ts').OutagelessError).describe();
    expect(described).toContain('cache "grades", mode: must be "application" or "request"');
    expect(described).toContain('component: mod_assign');
    expect(described).toContain('file: plugins/mod/assign/db/caches.ts');
    expect(described).toContain('fix: ');
  });
});

describe('a front\'s caches and purges (embedded database)', () => {
  let database: SiteDatabase;
  let front: Front;

  beforeAll(async () => {
    database = await openDatabase(`pglite://memory/caches-${randomBytes(4).toString('hex')}`);
    front = await startFront({ database, code: await discoverSite(join(RELEASES, '3')), pollIntervalMs: 60_000 });
  });
  afterAll(async () => {
    await front?.close();
    await database?.close();
  });

  it('a component purge reaches the front\'s store and spares other components; a full purge drops all', async () => {
    const caches = await attachCaches(front);
    const reports = caches.cache('local_reports', 'report_cache');
    reports.set('weekly', 'html');

    const other = await purgeCaches(database.db, { kind: 'component', component: 'mod_assign' });
    expect(other).toEqual({ kind: 'component', component: 'mod_assign', revision: 1 });
    await front.refresh();
    expect(reports.get('weekly')).toBe('html');

    await purgePlannedCaches(database.db, { kind: 'own', components: ['local_reports'] });
    expect(reports.get('weekly')).toBe('html'); // the front has not seen the new revision yet
    await front.refresh();
    expect(reports.get('weekly')).toBeUndefined();
    expect(Object.fromEntries(await readCacheRevisions(database.db))).toEqual({ mod_assign: 1, local_reports: 1 });
    expect((await readFlags(database.db)).cacheRevision).toBe(0);

    reports.set('weekly', 'html2');
    expect(await purgeCaches(database.db, { kind: 'all' })).toEqual({ kind: 'all', revision: 1 });
    await front.refresh();
    expect(reports.get('weekly')).toBeUndefined();
    expect(await purgePlannedCaches(database.db, { kind: 'none' })).toEqual([]);
  });
});
