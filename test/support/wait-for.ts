/** Polls `check` until it holds; fails after `timeoutMs`, saying so. */
export async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  await waitForAsync(async () => check(), timeoutMs);
}

/** waitFor for a check that has to wait for something itself (a file, an HTTP answer). */
export async function waitForAsync(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
