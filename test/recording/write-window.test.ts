import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WriteWindow, writeWindow } from '../../src/recording/write-window.js';

describe('WriteWindow', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs the writes that fall due in one window together, when it closes, and each once', () => {
    const w = new WriteWindow(25);
    const ran: string[] = [];
    const a = () => ran.push('a');
    const b = () => ran.push('b');
    w.add(a);
    vi.advanceTimersByTime(10);
    w.add(b);
    w.add(a); // already waiting: still once
    vi.advanceTimersByTime(14);
    expect(ran).toEqual([]);
    vi.advanceTimersByTime(1); // 25 ms after the first: the window closes for both
    expect(ran).toEqual(['a', 'b']);
    expect(w.size).toBe(0);
    vi.advanceTimersByTime(100);
    expect(ran).toEqual(['a', 'b']);
  });

  it('opens a new window for a write asked for after one closed, never waiting longer than its delay', () => {
    const w = new WriteWindow(25);
    const at: number[] = [];
    w.add(() => at.push(Date.now()));
    vi.advanceTimersByTime(25);
    const asked = Date.now();
    vi.advanceTimersByTime(3);
    w.add(() => at.push(Date.now()));
    vi.advanceTimersByTime(25);
    expect(at).toHaveLength(2);
    expect(at[1]! - (asked + 3)).toBe(25);
  });

  it('lets a write leave the window, and keeps no timer once none is waiting', () => {
    const w = new WriteWindow(25);
    const ran: string[] = [];
    const a = () => ran.push('a');
    const b = () => ran.push('b');
    w.add(a);
    w.add(b);
    w.delete(a);
    expect(vi.getTimerCount()).toBe(1);
    w.delete(b);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100);
    expect(ran).toEqual([]);
  });

  it('is one window per delay for the whole process', () => {
    expect(writeWindow(25)).toBe(writeWindow(25));
    expect(writeWindow(25)).not.toBe(writeWindow(4));
  });
});
