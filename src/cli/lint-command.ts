import { resolve } from 'node:path';
import { Command } from 'commander';
import { discoverSite } from '../component/discover.ts';
import { componentErrors } from '../component/errors.ts';
import { lintStepImports, type StepImportFinding, type StepImportLint } from '../component/import-lint.ts';
import { ExitCode } from '../errors.ts';
import { output, withSiteOptions, type CommandResult, type SiteOptions } from './context.ts';

/**
 * `outageless lint`: checks every component's step files against the step-import rule
 * (only `outageless`, `kysely`, Node built-ins and `db/` files). It reads code only, so it
 * needs no database and fits a pre-commit hook or CI: 0 clean, 6 with findings.
 *
 * @example
 * ```sh
 * outageless lint --root /srv/lms          # lists each finding with its fix, exit 6
 * outageless lint --root /srv/lms --json   # { ok, components, files, findings: [...] }
 * ```
 */
export function lintCommand(run: (result: Promise<CommandResult>) => void): Command {
  return withSiteOptions(new Command('lint'))
    .description('check that step files (db/upgrade.ts, db/install.ts and what they import) import only outageless, kysely, Node built-ins and db/ files; needs no database (0 clean, 6 findings)')
    .action((options: SiteOptions) => run(lint(options)));
}

async function lint(options: SiteOptions): Promise<CommandResult> {
  const out = output(options);
  const code = await discoverSite(resolve(options.root));
  const results: StepImportLint[] = [];
  // One component at a time, in name order, so the listing is stable between runs.
  for (const name of [...code.components.keys()].sort()) results.push(await lintStepImports(code, code.components.get(name)!));
  const findings = results.flatMap((result) => result.findings);
  const files = results.reduce((sum, result) => sum + result.files.length, 0);

  out.json({
    ok: findings.length === 0,
    ...(findings.length > 0 ? { code: componentErrors.stepImport.code } : {}),
    components: results.length,
    files,
    findings,
  });
  if (findings.length === 0) {
    out.text(`Lint OK: ${files} step file(s) in ${results.length} component(s) import only outageless, kysely, Node built-ins and db/ files.`);
    return ExitCode.ok;
  }
  const failing = new Set(findings.map((finding) => finding.component)).size;
  out.text(`${componentErrors.stepImport.code}: ${findings.length} import(s) in step files break the rule, in ${failing} component(s):`);
  for (const finding of findings) out.text(describe(finding));
  return ExitCode.lintFailed;
}

function describe(finding: StepImportFinding): string {
  const what = finding.kind === 'forbidden-import'
    ? `imports "${finding.specifier}"${finding.resolved ? ` (${finding.resolved})` : ''}`
    : `imports a module named at run time: ${finding.expression}`;
  return [
    `  - ${finding.component}: ${finding.file}:${finding.line} ${what}`,
    ...(finding.entry === finding.file ? [] : [`    reached from: ${finding.entry}`]),
    `    fix: ${finding.fix}`,
  ].join('\n');
}
