import { afterEach, describe, expect, it, vi } from 'vitest';
import { ArenaReader, KEEP_FREE, TRIM_MS, holdBytes, releaseBytes } from '../../src/protocol/read-arenas.js';

// A file of its own: the free list is module state, and this test needs it to start empty.
afterEach(() => vi.useRealTimers());

describe('read arena reuse', () => {
  it('keeps arenas that come back for reuse, and lets go of those not needed for a while', () => {
    vi.useFakeTimers();
    // 40 connections' arenas, all held (frames in flight), then all handed back.
    const held: Buffer[] = [];
    for (let k = 0; k < 40; k++) {
      const reader = new ArenaReader();
      const slot = reader.nextSlot();
      slot.write('3.nop;');
      const bytes = reader.took(6);
      holdBytes(bytes);
      held.push(bytes);
      reader.close();
    }
    const ours = new Set(held.map((b) => b.buffer));
    for (const b of held) releaseBytes(b);
    // Right away, new connections get those arenas back.
    const early = Array.from({ length: 10 }, () => new ArenaReader());
    expect(early.filter((r) => ours.has(r.nextSlot().buffer)).length).toBe(10);
    for (const r of early) r.close();
    // Two quiet trim periods later only KEEP_FREE remain.
    vi.advanceTimersByTime(2 * TRIM_MS + 1);
    const late = Array.from({ length: KEEP_FREE + 5 }, () => new ArenaReader());
    expect(late.filter((r) => ours.has(r.nextSlot().buffer)).length).toBe(KEEP_FREE);
    for (const r of late) r.close();
  });
});
