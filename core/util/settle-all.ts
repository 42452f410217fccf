// Waiting for every piece of a request, not only the first failure: pieces that write into the
// caller's buffer (a read, a decode on the thread pool) must all be done before the request
// answers, or one would write into memory its owner has taken back.

/** Resolves when every job has succeeded; once every job has settled, rejects with the first
 *  failure (in the jobs' order). */
export async function settleAll(jobs: readonly Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(jobs)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
