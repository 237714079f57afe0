/** Events mod_assign observes; the handlers are the `observers` export of its index.ts. */
export default [{ event: 'course_viewed', handler: 'onCourseViewed' }] as const;
