/**
 * A generated site: core plus plugins spread over the core's plugin types, each with
 * `version.ts`, `db/schema.ts` (one small table) and `db/upgrade.ts` (a few additive steps).
 * It lives in a temp directory whose `node_modules/outageless` links to this repository, so
 * `import { defineVersion } from 'outageless'` resolves the way it does in an installed app.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..', '..');

export const PLUGIN_TYPES = ['theme', 'auth', 'format', 'block', 'mod', 'local'] as const;

const BASE_VERSION = 2026010103;
const BASE_STEPS = [2026010101, 2026010102, 2026010103] as const;
const BUMPED_VERSION = 2026020100;

/** What a component's files say: as installed, bumped code-only, or bumped with a db/ change. */
export type ComponentState = 'base' | 'code-bump' | 'db-bump';

export interface GeneratedComponent {
  /** `core` or `<type>_<name>`. */
  readonly name: string;
  /** Directory relative to the site root. */
  readonly dir: string;
  readonly table: string;
}

export interface GeneratedSite {
  readonly root: string;
  readonly components: readonly GeneratedComponent[];
  /** Rewrites a component's files for `state`. */
  write(component: GeneratedComponent, state: ComponentState): Promise<void>;
  cleanup(): Promise<void>;
}

function versionFile(component: GeneratedComponent, state: ComponentState): string {
  const bumped = state !== 'base';
  const extra = component.name === 'core' ? `\n  pluginTypes: ${JSON.stringify(PLUGIN_TYPES)},` : '\n  requires: 2026010100,';
  return `import { defineVersion } from 'outageless';

export default defineVersion({
  component: '${component.name}',
  version: ${bumped ? BUMPED_VERSION : BASE_VERSION},
  release: '${bumped ? '1.1' : '1.0'}',
  maturity: 'stable',${extra}
});
`;
}

function schemaFile(component: GeneratedComponent, state: ComponentState): string {
  const note = state === 'db-bump' ? "\n        note: { type: 'text', nullable: true }," : '';
  return `import { defineSchema } from 'outageless';

export default defineSchema({
  tables: {
    ${component.table}: {
      columns: {
        id: { type: 'bigint', autoIncrement: true },
        name: { type: 'varchar(255)', default: '' },
        created: { type: 'timestamp', default: { sql: 'now()' } },
        extra1: { type: 'integer', nullable: true },
        extra2: { type: 'text', nullable: true },
        extra3: { type: 'boolean', default: false },${note}
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['name'] }],
    },
  },
});
`;
}

function step(component: GeneratedComponent, version: number, column: string, definition: string): string {
  return `    {
      version: ${version},
      id: '${component.name}_add_${column}',
      description: 'Add ${column} to ${component.table}',
      outage: 'none',
      async run({ schema }) {
        await schema.addColumn('${component.table}', '${column}', ${definition});
      },
    },
`;
}

function upgradeFile(component: GeneratedComponent, state: ComponentState): string {
  const steps = [
    step(component, BASE_STEPS[0], 'extra1', "{ type: 'integer', nullable: true }"),
    step(component, BASE_STEPS[1], 'extra2', "{ type: 'text', nullable: true }"),
    step(component, BASE_STEPS[2], 'extra3', "{ type: 'boolean', default: false }"),
  ];
  if (state === 'db-bump') steps.push(step(component, BUMPED_VERSION, 'note', "{ type: 'text', nullable: true }"));
  return `import { defineUpgrade } from 'outageless';

export default defineUpgrade({
  steps: [
${steps.join('')}  ],
});
`;
}

/** The components of a site of `size` components: core, then plugins round-robin over the types. */
export function siteComponents(size: number): GeneratedComponent[] {
  const components: GeneratedComponent[] = [{ name: 'core', dir: 'core', table: 'core_config' }];
  for (let i = 0; i < size - 1; i++) {
    const type = PLUGIN_TYPES[i % PLUGIN_TYPES.length]!;
    const name = `p${String(i).padStart(3, '0')}`;
    components.push({ name: `${type}_${name}`, dir: join('plugins', type, name), table: `${type}_${name}_item` });
  }
  return components;
}

/** Writes a site of `size` components, all at their base state, into a new temp directory. */
export async function generateSite(size: number): Promise<GeneratedSite> {
  const root = await mkdtemp(join(tmpdir(), 'outageless-bench-site-'));
  await mkdir(join(root, 'node_modules'), { recursive: true });
  await symlink(REPO, join(root, 'node_modules', 'outageless'), 'dir');
  // An application's own package.json: its .ts files are ES modules, as in a real app.
  await writeFile(join(root, 'package.json'), `${JSON.stringify({ name: 'bench-site', private: true, type: 'module' }, null, 2)}\n`);

  const write = async (component: GeneratedComponent, state: ComponentState): Promise<void> => {
    const dir = join(root, component.dir);
    await mkdir(join(dir, 'db'), { recursive: true });
    await Promise.all([
      writeFile(join(dir, 'version.ts'), versionFile(component, state)),
      writeFile(join(dir, 'db', 'schema.ts'), schemaFile(component, state)),
      writeFile(join(dir, 'db', 'upgrade.ts'), upgradeFile(component, state)),
    ]);
  };
  const components = siteComponents(size);
  for (const component of components) await write(component, 'base');
  return { root, components, write, cleanup: () => rm(root, { recursive: true, force: true }) };
}
