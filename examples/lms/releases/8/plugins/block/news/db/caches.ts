/** Cache definitions of block_news (new in release 4): the post list of each course. */
export default { post_list: { mode: 'application' } };
