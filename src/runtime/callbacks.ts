import type { Front } from './front.ts';

/**
 * Callbacks: hooks one component offers into other components' pages (Moodle's
 * `before_footer`, say). A component's runtime `index.ts` exports them by hook name:
 *
 * ```ts
 * export const callbacks = { before_footer: () => '<p>News: 3 new posts</p>' }
 * ```
 *
 * A paused component's callbacks are skipped (DESIGN §4.4): its code may be mid-upgrade,
 * and a page of another component must keep rendering without it.
 */
export type CallbackModules = ReadonlyMap<string, object>;

export interface Callbacks {
  /**
   * The callbacks registered for `hook`, in upgrade order, without those of paused components.
   *
   * @example
   * ```ts
   * const footers = app.outagelessCallbacks.for<() => string>('before_footer')
   * const html = footers.map(({ callback }) => callback()).join('')
   * ```
   */
  for<T = (...args: unknown[]) => unknown>(hook: string): { readonly component: string; readonly callback: T }[];
}

export function createCallbacks(front: Front, modules: CallbackModules): Callbacks {
  const byHook = new Map<string, { component: string; callback: unknown }[]>();
  for (const [component, module] of modules) {
    for (const [hook, callback] of Object.entries((module as { callbacks?: Record<string, unknown> }).callbacks ?? {})) {
      if (typeof callback !== 'function') continue;
      let list = byHook.get(hook);
      if (!list) byHook.set(hook, (list = []));
      list.push({ component, callback });
    }
  }
  return {
    for<T>(hook: string) {
      const states = front.state().componentStates;
      const parentOf = (name: string) => front.code.components.get(name)?.parent ?? name;
      return (byHook.get(hook) ?? [])
        .filter(({ component }) => !states.has(parentOf(component)))
        .map(({ component, callback }) => ({ component, callback: callback as T }));
    },
  };
}
