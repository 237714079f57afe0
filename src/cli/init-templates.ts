/**
 * The files `outageless init` writes: a site with core and one plugin (`local_hello`) that has
 * a table, an upgrade step, initial data and a route reading the table through
 * `app.outagelessDatabase`. Kept as strings in src so they ship in dist with the CLI and take
 * the versions of the day they are written.
 */

/** What the templates are filled in with. */
export interface SiteTemplateInput {
  /** The `name` of a new package.json (the directory's name, made npm-safe). */
  readonly name: string;
  /** `YYYYMMDD` of the day init runs: the versions are `YYYYMMDD00`. */
  readonly date: string;
  /** This package's version, for the dependency range. */
  readonly outagelessVersion: string;
  /** The `fastify` range outageless depends on: the routes' types come from it. */
  readonly fastifyRange: string;
  /** `engines.node` of outageless. */
  readonly nodeRange: string;
}

/** One file of the scaffold, its path relative to the site root, `/`-separated. */
export interface TemplateFile {
  readonly path: string;
  readonly text: string;
}

/** The plugin the scaffold ships, and where its route is served. */
export const SCAFFOLD_PLUGIN = { component: 'local_hello', dir: 'plugins/local/hello', route: '/local_hello/', table: 'local_hello_greeting' } as const;

/**
 * The package.json fields init needs: the ES module type (component files are ES modules),
 * the dependency, the engine and scripts. Merged into an existing package.json, never replacing
 * what it already has except a conflicting `type`.
 *
 * @example
 * ```ts
 * packageFields({ name: 'my-site', date: '20261202', outagelessVersion: '0.1.0', fastifyRange: '5.12.8', nodeRange: '>=22.12' })
 * // { type: 'module', dependencies: { outageless: '^0.1.0', fastify: '5.12.8' }, … }
 * ```
 */
export function packageFields(input: SiteTemplateInput) {
  return {
    type: 'module',
    engines: { node: input.nodeRange },
    scripts: {
      upgrade: 'outageless upgrade',
      status: 'outageless status',
      serve: 'outageless serve',
      lint: 'outageless lint',
      'check-schema': 'outageless check-schema',
    },
    dependencies: { outageless: `^${input.outagelessVersion}`, fastify: input.fastifyRange },
  } as const;
}

/** The lines init makes sure the site's .gitignore has (the embedded database lives in .outageless/). */
export const GITIGNORE_LINES: readonly string[] = ['node_modules/', '.outageless/'];

/**
 * Every component file of the scaffold (package.json and .gitignore are merged, not templated).
 *
 * @example
 * ```ts
 * for (const file of siteTemplates(input)) await writeFile(join(root, file.path), file.text)
 * ```
 */
export function siteTemplates(input: SiteTemplateInput): readonly TemplateFile[] {
  const version = `${input.date}00`;
  const { component, dir, table } = SCAFFOLD_PLUGIN;
  return [
    {
      path: 'tsconfig.json',
      text: `${JSON.stringify(
        {
          // For editors and `tsc --noEmit`: Node runs these files itself, stripping the types.
          compilerOptions: {
            target: 'es2023',
            module: 'nodenext',
            moduleResolution: 'nodenext',
            strict: true,
            noEmit: true,
            allowImportingTsExtensions: true,
            erasableSyntaxOnly: true,
            verbatimModuleSyntax: true,
            skipLibCheck: true,
          },
          include: ['core', 'plugins'],
        },
        null,
        2,
      )}\n`,
    },
    {
      path: 'core/version.ts',
      text: `import { defineVersion } from 'outageless';

/** The site's core. Bump \`version\` (YYYYMMDDXX) with every change to core/db/, then run \`outageless upgrade\`. */
export default defineVersion({
  component: 'core',
  version: ${version},
  release: '0.1',
  maturity: 'stable',
  // The plugin types this site has: a plugin <type>_<name> lives in plugins/<type>/<name>/.
  pluginTypes: ['mod', 'block', 'local'],
});
`,
    },
    {
      path: 'core/index.ts',
      text: `import type { FastifyInstance } from 'fastify';

/** Core routes, mounted under \`/\`. */
export default async function routes(app: FastifyInstance): Promise<void> {
  app.get('/', async () => ({ site: ${JSON.stringify(input.name)}, component: 'core', plugins: ['${component}'] }));
}
`,
    },
    {
      path: `${dir}/version.ts`,
      text: `import { defineVersion } from 'outageless';

export default defineVersion({
  component: '${component}',
  version: ${version},
  release: '0.1',
  // The oldest core version this plugin runs on.
  requires: ${version},
  maturity: 'stable',
});
`,
    },
    {
      path: `${dir}/db/schema.ts`,
      text: `import { defineSchema } from 'outageless';

/**
 * The tables of ${component} as they are after every step: what a fresh install creates and
 * what \`outageless check-schema\` compares the database with. Prefix tables with the component.
 */
export default defineSchema({
  tables: {
    ${table}: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        message: { type: 'varchar(255)' },
        created: { type: 'timestamp', default: { sql: 'now()' } },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['created'] }],
    },
  },
});
`,
    },
    {
      path: `${dir}/db/install.ts`,
      text: `import { defineInstall } from 'outageless';

/** Initial data, right after a fresh install created the tables of db/schema.ts. */
export default defineInstall(async ({ db }) => {
  const existing = await db.selectFrom('${table}').select('id').executeTakeFirst();
  if (!existing) await db.insertInto('${table}').values({ message: 'Hello from ${component}' }).execute();
});
`,
    },
    {
      path: `${dir}/db/upgrade.ts`,
      text: `import { defineUpgrade } from 'outageless';

/**
 * Upgrade steps of ${component}. A fresh install creates db/schema.ts whole and runs none of
 * them; a site installed at an older version runs those above it. To change the schema: edit
 * db/schema.ts, add a step that makes the same change at the new version, bump version.ts.
 */
export default defineUpgrade({
  steps: [
    {
      version: ${version},
      id: 'hello_index_created',
      description: 'Index greetings by creation time',
      // Safe while old and new code serve (built CONCURRENTLY online): no maintenance needed.
      outage: 'none',
      async run({ schema }) {
        await schema.addIndex('${table}', { columns: ['created'] });
      },
    },
  ],
});
`,
    },
    {
      path: `${dir}/index.ts`,
      text: `import type { FastifyInstance } from 'fastify';
import type { TablesOf } from 'outageless';
// The types of app.outagelessDatabase and the other decorations (type-only: nothing loads).
import type {} from 'outageless/fastify';

type Tables = TablesOf<typeof import('./db/schema.ts').default>;

/** ${component} routes, mounted under \`/${component}\`. */
export default async function routes(app: FastifyInstance): Promise<void> {
  const db = app.outagelessDatabase.kysely<Tables>();
  app.get('/', async () => {
    const greetings = await db.selectFrom('${table}').select(['id', 'message']).orderBy('id').execute();
    return { component: '${component}', greetings };
  });
}
`,
    },
  ];
}
