import { afterAll, describe, expect, it } from 'vitest';
import { isRecgwError, type RecgwError } from '../../src/errors.js';
import { parseAll } from '../../src/protocol/index.js';
import { createTestLoggers } from '../../src/observability/logger.js';
import { checkDiskFloor, DiskWatchdog, freeBytes, sharedMeasurement } from '../../src/recording/disk-guard.js';
import { makeRecorder, startInfo, tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

describe('disk floor', () => {
  it('measures the real free space and refuses above it', async () => {
    const free = await freeBytes(spool.dir);
    expect(free).toBeGreaterThan(0);
    // A spool that does not exist yet is measured on its nearest existing parent.
    expect(Math.abs((await freeBytes(`${spool.dir}/not/yet`)) - free)).toBeLessThan(1024 ** 3); // others write to this disk meanwhile
    await checkDiskFloor(spool.dir, 1);
    const err = await checkDiskFloor(spool.dir, free + 1024 ** 4).catch((e: unknown) => e);
    expect(isRecgwError(err, 'RECGW_ERR_DISK_FLOOR')).toBe(true);
    expect((err as RecgwError).message).toMatch(/RECORDING_MIN_FREE_BYTES/);
  });
});

describe('sharedMeasurement', () => {
  it('lets calls within the reuse window share one measurement, per path, and never reuses a failure', async () => {
    let clock = 0;
    const calls: string[] = [];
    let fail = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const measure = sharedMeasurement(
      async (path) => {
        const n = calls.push(path);
        await gate;
        if (fail) throw new Error('df failed');
        return n;
      },
      250,
      () => clock,
    );
    // A burst of admissions while the first `df` runs: one measurement for all of them.
    const burst = Array.from({ length: 20 }, () => measure('/spool'));
    const other = measure('/elsewhere');
    release();
    expect(await Promise.all(burst)).toEqual(Array(20).fill(1));
    expect(await other).toBe(2);
    expect(calls).toEqual(['/spool', '/elsewhere']);
    clock = 249;
    expect(await measure('/spool/.')).toBe(1); // same path once resolved, still fresh
    clock = 250;
    expect(await measure('/spool')).toBe(3); // too old: measured again
    clock = 600;
    fail = true;
    await expect(measure('/spool')).rejects.toThrow('df failed');
    fail = false;
    expect(await measure('/spool')).toBe(5); // the failure was not kept
  });
});

describe('DiskWatchdog', () => {
  it('ends every active recording under half the floor, and none above it', async () => {
    const t = makeRecorder(spool.dir);
    const a = await t.recorder.start(startInfo('wd-a'));
    const b = await t.recorder.start(startInfo('wd-b'));
    for (const i of parseAll(Buffer.from('4.size,1.0,2.64,2.64;4.sync,1.1;'))) {
      a.serverInstruction(i);
      b.serverInstruction(i);
    }
    const floor = 1000;
    let free = 999; // under the floor, above half: only new sessions are refused
    const dog = new DiskWatchdog({ spoolDir: spool.dir, minFreeBytes: floor, intervalMs: 20, recorder: t.recorder, logger: createTestLoggers().app, freeBytes: async () => free });
    const failures: RecgwError[] = [];
    a.onFailure((e) => failures.push(e));
    b.onFailure((e) => failures.push(e));
    await dog.check();
    expect(failures).toHaveLength(0);

    free = 499;
    dog.start();
    await new Promise((r) => setTimeout(r, 150));
    dog.stop();
    expect(failures.map((e) => e.code)).toEqual(['RECGW_ERR_DISK_FLOOR', 'RECGW_ERR_DISK_FLOOR']);
    await Promise.all([a.close('x'), b.close('x')]);
    expect(t.recorder.active.size).toBe(0);
    for (const id of ['wd-a', 'wd-b']) {
      const j = await t.journals.get(id);
      expect(j.data.segments.map((s) => s.state)).toEqual(['sealed']);
      expect(j.data.connections[0]!.end_reason).toMatch(/RECGW_ERR_DISK_FLOOR/);
    }
  });
});
