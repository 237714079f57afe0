/** Cache definitions of local_reports. New in release 3, with no upgrade step to vouch for it. */
export default { report_cache: { mode: 'application' } };
