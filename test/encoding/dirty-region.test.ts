import { describe, expect, it } from 'vitest';
import { DirtyRegion } from '../../src/encoding/dirty-region.js';

describe('DirtyRegion', () => {
  it('keeps far-apart changes as separate boxes and joins overlapping ones', () => {
    const d = new DirtyRegion();
    expect(d.empty).toBe(true);
    d.add(0, 0, 10, 10);
    d.add(900, 700, 920, 720);
    d.add(5, 5, 15, 15);
    const rects = d.take(1024, 768);
    expect(rects).toContainEqual({ x0: 0, y0: 0, x1: 15, y1: 15 });
    expect(rects).toContainEqual({ x0: 900, y0: 700, x1: 920, y1: 720 });
    expect(rects).toHaveLength(2);
    expect(d.empty).toBe(true);
  });

  it('clips to the frame, rounds outwards, and drops empty boxes', () => {
    const d = new DirtyRegion();
    d.add(-5, -5, 3.5, 2.2);
    d.add(2000, 2000, 2010, 2010);
    d.add(4, 4, 4, 9);
    expect(d.take(100, 100)).toEqual([{ x0: 0, y0: 0, x1: 4, y1: 3 }]);
  });

  it('never holds more than a dozen boxes, and their union still covers every change', () => {
    const d = new DirtyRegion();
    const points: Array<[number, number]> = [];
    for (let i = 0; i < 100; i++) {
      const x = (i * 97) % 1000;
      const y = (i * 61) % 700;
      points.push([x, y]);
      d.add(x, y, x + 3, y + 3);
    }
    const rects = d.take(1024, 768);
    expect(rects.length).toBeLessThanOrEqual(12);
    for (const [x, y] of points) {
      expect(rects.some((r) => r.x0 <= x && r.y0 <= y && r.x1 >= x + 3 && r.y1 >= y + 3)).toBe(true);
    }
  });
});
