/**
 * `outageless/fastify`: the front runtime. Register it in a Fastify app to serve a site's
 * components with every request guarded against the site state.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify'
 * import { outageless } from 'outageless/fastify'
 *
 * const app = Fastify({ logger: true })
 * await app.register(outageless, { root: '/srv/lms', adminSecret: process.env.OUTAGELESS_ADMIN_SECRET })
 * await app.listen({ port: 3000 })
 * ```
 */
export { outageless, type OutagelessPluginOptions, type RouteArea, type JobsTuning } from './plugin.ts';
export type { OutagelessDatabase } from './database-api.ts';
export { startJobs, type Jobs, type JobsOptions, type EmitOptions, type EmitResult, type TaskRun } from '../jobs/runtime.ts';
export { outageless as default } from './plugin.ts';
export { sendUnavailable, wantsJson } from './unavailable.ts';
export { decide, UPGRADING_MESSAGE, type GuardVerdict, type FrontView, type ComponentView, type RequestArea } from '../runtime/guard.ts';
export { startFront, type Front, type FrontOptions } from '../runtime/front.ts';
export { listFronts, type FrontRecord, type FrontRelation } from '../runtime/front-registry.ts';
export { readSiteState, type SiteState } from '../runtime/site-state.ts';
