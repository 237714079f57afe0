/**
 * Server-rendered HTML for fronts: the 503 pages and the admin area. Every interpolated value
 * goes through `html` so component names, reasons and messages can never inject markup.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Marks a string as already-safe HTML. */
export interface SafeHtml {
  readonly __html: string;
}

export function raw(value: string): SafeHtml {
  return { __html: value };
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  if (typeof value === 'object' && '__html' in value) return (value as SafeHtml).__html;
  return String(value).replace(/[&<>"']/g, (char) => ESCAPES[char]!);
}

/** Tagged template that escapes every interpolation (arrays are joined, `raw()` passes through). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  values.forEach((value, index) => {
    out += render(value) + strings[index + 1]!;
  });
  return raw(out);
}

const STYLE = `
  body { font-family: system-ui, sans-serif; margin: 0; color: #1d2125; background: #f8f9fa; }
  header { background: #0f47ad; color: #fff; padding: .8rem 1.5rem; display: flex; justify-content: space-between; align-items: center; }
  header a, header button { color: #fff; }
  main { padding: 1.5rem; max-width: 70rem; }
  table { border-collapse: collapse; width: 100%; background: #fff; margin: .5rem 0 1.5rem; }
  th, td { border: 1px solid #dee2e6; padding: .4rem .6rem; text-align: left; vertical-align: top; font-size: .92rem; }
  th { background: #e9ecef; }
  .class-none { color: #1e7e34; } .class-component { color: #b35c00; } .class-site { color: #b02a37; font-weight: 600; }
  .notice { padding: .8rem 1rem; border-radius: .3rem; margin: 1rem 0; }
  .notice.info { background: #d1ecf1; } .notice.warn { background: #fff3cd; } .notice.error { background: #f8d7da; }
  .notice.needs-maintenance { background: #f8d7da; border-left: .4rem solid #b02a37; color: #58151c; }
  .notice.no-maintenance { background: #d1e7dd; border-left: .4rem solid #1e7e34; color: #0a3622; }
  .state-normal { color: #1e7e34; } .state-paused { color: #b02a37; font-weight: 600; } .state-post-install { color: #b35c00; font-weight: 600; }
  .outcome-done { color: #1e7e34; } .outcome-refused { color: #b35c00; font-weight: 600; } .outcome-failed { color: #b02a37; font-weight: 600; }
  form.inline { display: inline-block; margin: 0 .4rem .4rem 0; }
  form.inline button { padding: .3rem .7rem; font-size: .9rem; cursor: pointer; }
  .actions-row { margin: .5rem 0 1rem; }
  button.primary { background: #0f47ad; color: #fff; border: 0; padding: .6rem 1.2rem; border-radius: .3rem; font-size: 1rem; cursor: pointer; }
  ul.reasons { margin: 0; padding-left: 1.1rem; }
  pre.progress { background: #212529; color: #f8f9fa; padding: 1rem; max-height: 24rem; overflow: auto; }
  nav a { margin-right: 1rem; }
`;

/** The script that shows every `<time>` of an admin page in local time with its age (served by admin-dashboard.ts). */
export const LOCAL_TIME_SCRIPT = '/admin/assets/local-time.js';

/**
 * A moment for a page: `<time datetime="ISO">2026-12-02 05:56:13 UTC</time>`. The UTC text is
 * what a reader without scripts sees; on admin pages the local-time script rewrites it to local
 * time and "3 min ago".
 *
 * @example
 * ```ts
 * html`<td>${timeTag(front.lastSeen)}</td>`
 * ```
 */
export function timeTag(date: Date): SafeHtml {
  const iso = date.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')} UTC</time>`;
}

/** A complete page with the site header; admin pages also load the local-time script. */
export function page(title: string, body: SafeHtml, options: { admin?: boolean; csrfToken?: string } = {}): string {
  const logout = options.admin && options.csrfToken
    ? html`<form method="post" action="/admin/logout" style="margin:0"><input type="hidden" name="_csrf" value="${options.csrfToken}"><button type="submit" style="background:none;border:0;cursor:pointer">Log out</button></form>`
    : '';
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><style>${raw(STYLE)}</style></head>
<body><header><strong>${title}</strong>${logout}</header><main>${body}</main>${options.admin ? raw(`<script src="${LOCAL_TIME_SCRIPT}" defer></script>`) : ''}</body></html>`.__html;
}
