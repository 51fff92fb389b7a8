import { describe, expect, test } from 'vitest';
import { classifyFailure, retryAsync, RetryPolicy } from '../../src/storage/retry-policy.js';

describe('RetryPolicy', () => {
  test('defaults: first retry within a minute, exponential, capped at one hour, jittered ±20%', () => {
    const low = new RetryPolicy({ random: () => 0 });
    const high = new RetryPolicy({ random: () => 0.999999 });
    const mid = new RetryPolicy({ random: () => 0.5 });
    expect(mid.delayMs(1)).toBe(30_000);
    expect(high.delayMs(1)).toBeLessThan(60_000);
    expect(low.delayMs(1)).toBe(24_000);
    expect(mid.delayMs(2)).toBe(60_000);
    expect(mid.delayMs(5)).toBe(480_000);
    for (const p of [low, mid, high]) {
      expect(p.delayMs(50)).toBeLessThanOrEqual(3_600_000);
      expect(p.delayMs(1000)).toBeLessThanOrEqual(3_600_000);
    }
    expect(low.delayMs(50)).toBe(2_880_000);
  });

  test('errors an admin must fix are retried slowly', () => {
    const p = new RetryPolicy({ random: () => 0.5 });
    expect(p.delayMs(1, 'permanent')).toBe(900_000);
    expect(p.delayMs(10, 'permanent')).toBe(3_600_000);
    const next = p.nextAttemptAt(1, 'transient', new Date('2026-01-01T00:00:00Z'));
    expect(next.toISOString()).toBe('2026-01-01T00:00:30.000Z');
  });

  test('classifies S3 and file-system errors', () => {
    const s3 = (name: string, status: number) => Object.assign(new Error('x'), { name, $metadata: { httpStatusCode: status } });
    expect(classifyFailure(s3('AccessDenied', 403))).toMatchObject({ kind: 'permanent', code: 'AccessDenied' });
    expect(classifyFailure(s3('SignatureDoesNotMatch', 403))).toMatchObject({ kind: 'permanent' });
    expect(classifyFailure(s3('Forbidden', 403))).toMatchObject({ kind: 'permanent' });
    expect(classifyFailure(s3('SlowDown', 503))).toMatchObject({ kind: 'transient', code: 'SlowDown' });
    expect(classifyFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toMatchObject({ kind: 'transient', code: 'ECONNREFUSED' });
    expect(classifyFailure(Object.assign(new Error('EACCES'), { code: 'EACCES' }))).toMatchObject({ kind: 'permanent' });
  });

  test('retryAsync retries with the policy and gives up after maxAttempts', async () => {
    const p = new RetryPolicy({ baseMs: 5, random: () => 0.5 });
    let calls = 0;
    const delays: number[] = [];
    const result = await retryAsync(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw new Error(`fail ${attempt}`);
        return 'ok';
      },
      p,
      { maxAttempts: 5, onRetry: (_e, _a, d) => delays.push(d) },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(delays).toEqual([5, 10]);
    await expect(retryAsync(async () => Promise.reject(new Error('always')), p, { maxAttempts: 2 })).rejects.toThrow('always');
  });
});
