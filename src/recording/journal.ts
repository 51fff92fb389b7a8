import { access, mkdir, open, readFile, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { RecgwError } from '../errors.js';

/** Life of one segment; see DESIGN.md "One session on disk". */
export type SegmentState =
  | 'recording'
  | 'sealed'
  | 'encoding'
  | 'encoded'
  | 'uploading'
  | 'uploaded'
  | 'failed'
  | 'expired';

/** Which stage a `failed` segment failed in, so the sweep knows what to retry. */
export type FailedStage = 'encode' | 'upload';

export interface ClipInfo {
  file: string; // e.g. 000001.mp4, relative to the session folder
  bytes: number;
  sha256: string;
  thumbnail?: string; // e.g. 000001.jpg
  duration_ms: number;
  frames: number;
  width: number;
  height: number;
}

export interface UploadInfo {
  /** Object key (S3) or path (file store) the clip was stored under. */
  key: string;
  location: string; // s3://bucket@endpoint or file:///dir, no credentials
  uploaded_at?: string;
  extra_keys?: string[]; // thumbnail, raw segment, journal
}

export interface SegmentRecord {
  number: number;
  file: string; // 000001.guac
  state: SegmentState;
  bytes: number;
  sha256?: string;
  started_at: string;
  sealed_at?: string;
  /** Display state at the end of this segment, written by the encoder (000001.state.guac). */
  state_file?: string;
  clip?: ClipInfo;
  upload?: UploadInfo;
  failed_stage?: FailedStage;
  attempts: number;
  next_attempt_at?: string;
  last_error?: string;
  expired_at?: string;
  /** sync-clock span (ms) covered by the segment, when known. */
  first_sync?: number;
  last_sync?: number;
}

export interface ConnectionRecord {
  connection_id?: string; // guacd's $id
  client_ip: string;
  forwarded_for_client_ip?: string;
  user_agent?: string;
  started_at: string;
  ended_at?: string;
  end_reason?: string;
}

export interface SessionJournalData {
  version: 1;
  session_id: string;
  user_id?: string;
  username?: string;
  image_id?: string;
  image_friendly_name?: string;
  protocol: string;
  created_at: string;
  started_at: string;
  ended_at?: string;
  width?: number;
  height?: number;
  connections: ConnectionRecord[];
  segments: SegmentRecord[];
}

export const JOURNAL_FILE = 'session.json';

export function segmentBaseName(n: number): string {
  return String(n).padStart(6, '0');
}

export function sessionDir(spoolDir: string, sessionId: string): string {
  return join(spoolDir, 'sessions', sessionId);
}

/**
 * Where a finished session's folder is moved (JournalStore.moveToFinished): out of `sessions/`,
 * which the sweep, the backlog and the start-up scan read whole, but still found by name when
 * the session id connects again.
 */
export function finishedDir(spoolDir: string, sessionId: string): string {
  return join(spoolDir, 'finished', sessionId);
}

/**
 * The journal of one session: session.json, rewritten atomically (tmp → fsync → rename → fsync
 * of the folder) on every change so a crash leaves either the old or the new file, never half.
 *
 * Several stages (recorder, encoder, uploader) change the same journal; every change goes
 * through update(), which runs changes one at a time in order. Use one instance per session in
 * a process (JournalStore hands them out) so the in-memory copy is the truth.
 */
export class SessionJournal {
  readonly dir: string;
  #data: SessionJournalData;
  #chain: Promise<unknown> = Promise.resolve();
  /** Set once the folder was moved away (JournalStore.moveToFinished): this instance is stale. */
  #retired: string | undefined;

  private constructor(dir: string, data: SessionJournalData) {
    this.dir = dir;
    this.#data = data;
  }

  static async create(dir: string, data: SessionJournalData): Promise<SessionJournal> {
    await mkdir(dir, { recursive: true });
    const j = new SessionJournal(dir, data);
    await j.#write();
    return j;
  }

  static async load(dir: string): Promise<SessionJournal> {
    const path = join(dir, JOURNAL_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new RecgwError('RECGW_ERR_JOURNAL', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
    let data: SessionJournalData;
    try {
      data = JSON.parse(text) as SessionJournalData;
    } catch (err) {
      throw new RecgwError('RECGW_ERR_JOURNAL', `${path} is not valid JSON; move it aside to recover the segments by hand`, {
        cause: err,
      });
    }
    if (data.version !== 1 || !Array.isArray(data.segments)) {
      throw new RecgwError('RECGW_ERR_JOURNAL', `${path} is not a recgw session journal (version ${String(data.version)})`);
    }
    return new SessionJournal(dir, data);
  }

  /** A deep copy of the current data; change it only through update(). */
  get data(): SessionJournalData {
    return structuredClone(this.#data);
  }

  get sessionId(): string {
    return this.#data.session_id;
  }

  segment(n: number): SegmentRecord | undefined {
    const s = this.#data.segments.find((x) => x.number === n);
    return s && { ...s };
  }

  /**
   * Applies `change` to the data and writes the journal; changes run one at a time in call
   * order. The change may return a value, which update() resolves to.
   */
  update<T>(change: (data: SessionJournalData) => T): Promise<T> {
    const run = this.#chain.then(async () => {
      if (this.#retired) throw new RecgwError('RECGW_ERR_JOURNAL', `session journal ${this.dir} was moved to ${this.#retired}; ask the JournalStore for it again`);
      const next = structuredClone(this.#data);
      const result = change(next);
      const previous = this.#data;
      this.#data = next;
      try {
        await this.#write();
      } catch (err) {
        this.#data = previous;
        throw err;
      }
      return result;
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs `move` once every change already asked for is written, then refuses all later ones:
   * the folder is somewhere else now and another instance will stand for it.
   */
  retire(movedTo: string, move: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(async () => {
      await move();
      this.#retired = movedTo;
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Changes one segment's record; throws if the segment does not exist. */
  updateSegment(n: number, change: (seg: SegmentRecord) => void): Promise<SegmentRecord> {
    return this.update((data) => {
      const seg = data.segments.find((x) => x.number === n);
      if (!seg) throw new RecgwError('RECGW_ERR_JOURNAL', `session ${data.session_id} has no segment ${n}`);
      change(seg);
      return { ...seg };
    });
  }

  async #write(): Promise<void> {
    const path = join(this.dir, JOURNAL_FILE);
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(this.#data, null, 2) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    // The rename itself is durable only once the folder's entry is on disk.
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}

/** What the backlog needs of a settled session: its segments by state. */
export type SettledSummary = Partial<Record<SegmentState, number>>;

/**
 * Nothing left to do for this session: every connection ended, every segment stored or expired.
 * Only a new connection with the same session id (which goes through the recorder) changes it.
 */
export function isSettled(data: SessionJournalData): boolean {
  return (
    data.connections.every((c) => c.ended_at !== undefined) &&
    data.segments.every((s) => s.state === 'uploaded' || s.state === 'expired')
  );
}

/**
 * One SessionJournal per session folder in this process, so every stage sees the same data.
 *
 * A long-running gateway collects thousands of finished sessions; keeping each journal in
 * memory and looking at it on every sweep would grow without bound. So the sweep settles
 * sessions with nothing left to do (settle()): their journals are no longer held here, only
 * their segment counts (for the backlog), and the sweep skips them. A journal still referenced
 * elsewhere keeps being the one handed out (a weak reference finds it), so two instances of
 * one session never exist at once; get() and getOrCreate() unsettle a session (a reconnect).
 */
export class JournalStore {
  readonly spoolDir: string;
  /** Loads in flight, shared by concurrent callers. */
  readonly #loading = new Map<string, Promise<SessionJournal>>();
  /** Every journal handed out that still exists: at most one per session. */
  readonly #live = new Map<string, WeakRef<SessionJournal>>();
  /** Journals held in memory: those of sessions not settled. */
  readonly #pinned = new Map<string, SessionJournal>();
  /** Settled sessions: their segment counts, and when their last connection ended (ms since the epoch). */
  readonly #settled = new Map<string, { counts: SettledSummary; endedAt: number }>();
  /** Folder moves to finished/ under way: a get() for such a session waits for its move. */
  readonly #moving = new Map<string, Promise<boolean>>();
  /** Folder names already seen to hold a journal (list() checks each new name once). */
  readonly #known = new Set<string>();

  constructor(spoolDir: string) {
    this.spoolDir = spoolDir;
  }

  dirOf(sessionId: string): string {
    return sessionDir(this.spoolDir, sessionId);
  }

  /** The journal of an existing session (moved back from finished/ if it is there), loaded once. */
  get(sessionId: string): Promise<SessionJournal> {
    return this.#open(sessionId, () => this.#load(sessionId));
  }

  /** Opens the session's journal if it exists (in sessions/ or finished/), else creates it from `initial`. */
  getOrCreate(sessionId: string, initial: () => SessionJournalData): Promise<SessionJournal> {
    return this.#open(sessionId, async () => {
      try {
        return await this.#load(sessionId);
      } catch (err) {
        if ((err as { cause?: NodeJS.ErrnoException }).cause?.code !== 'ENOENT') throw err;
        return SessionJournal.create(this.dirOf(sessionId), initial());
      }
    });
  }

  /** Loads from sessions/, first moving the folder back from finished/ if it was put there. */
  async #load(sessionId: string): Promise<SessionJournal> {
    try {
      return await SessionJournal.load(this.dirOf(sessionId));
    } catch (err) {
      if ((err as { cause?: NodeJS.ErrnoException }).cause?.code !== 'ENOENT') throw err;
      const finished = finishedDir(this.spoolDir, sessionId);
      try {
        await rename(finished, this.dirOf(sessionId));
      } catch (moveErr) {
        if ((moveErr as NodeJS.ErrnoException).code === 'ENOENT') throw err; // not finished either: no such session
        // It exists but cannot come back: never let the caller start it afresh (numbering from 1
        // would overwrite its stored clips).
        throw new RecgwError('RECGW_ERR_JOURNAL', `cannot move ${finished} back to ${this.dirOf(sessionId)}: ${(moveErr as Error).message}`, { cause: moveErr });
      }
      return SessionJournal.load(this.dirOf(sessionId));
    }
  }

  #open(sessionId: string, load: () => Promise<SessionJournal>): Promise<SessionJournal> {
    const moving = this.#moving.get(sessionId);
    // Wait for the move, then load from wherever it left the folder.
    if (moving) return moving.then(() => this.#open(sessionId, load));
    this.#settled.delete(sessionId);
    const live = this.#live.get(sessionId)?.deref();
    if (live) {
      this.#pinned.set(sessionId, live);
      return Promise.resolve(live);
    }
    let p = this.#loading.get(sessionId);
    if (!p) {
      p = load();
      this.#loading.set(sessionId, p);
      const loaded = p;
      p.then(
        (j) => {
          this.#loading.delete(sessionId);
          this.#live.set(sessionId, new WeakRef(j));
          this.#known.add(sessionId);
          // Settled while loading (the sweep saw it through an instance still alive): stays so.
          if (!this.#settled.has(sessionId)) this.#pinned.set(sessionId, j);
        },
        () => {
          if (this.#loading.get(sessionId) === loaded) this.#loading.delete(sessionId);
        },
      );
    }
    return p;
  }

  /**
   * If the session has nothing left to do, lets go of its journal (see the class comment) and
   * returns true. `journal` is the session's journal, as the caller just looked at it.
   */
  settle(sessionId: string, journal: SessionJournal): boolean {
    const data = journal.data;
    if (!isSettled(data)) return false;
    const counts: SettledSummary = {};
    for (const seg of data.segments) counts[seg.state] = (counts[seg.state] ?? 0) + 1;
    const ends = [data.ended_at, ...data.connections.map((c) => c.ended_at)].map((t) => Date.parse(t ?? '')).filter(Number.isFinite);
    // A journal with no end time at all (hand-made) counts from its start.
    this.#settled.set(sessionId, { counts, endedAt: ends.length ? Math.max(...ends) : Date.parse(data.started_at) });
    this.#pinned.delete(sessionId);
    return true;
  }

  /** When a settled session's last connection ended (ms since the epoch); undefined if not settled. */
  settledSince(sessionId: string): number | undefined {
    return this.#settled.get(sessionId)?.endedAt;
  }

  /**
   * Moves a settled session's folder from sessions/ to finished/ and forgets it, so that the
   * sweep, the backlog and the start-up scan no longer see it; get() and getOrCreate() move it
   * back when its id connects again (its numbering continues). Returns false, moving nothing,
   * if the session is not settled or is being loaded. An instance of its journal still held
   * somewhere refuses changes from then on.
   */
  moveToFinished(sessionId: string): Promise<boolean> {
    const pending = this.#moving.get(sessionId);
    if (pending) return pending;
    if (!this.#settled.has(sessionId) || this.#loading.has(sessionId)) return Promise.resolve(false);
    const from = this.dirOf(sessionId);
    const to = finishedDir(this.spoolDir, sessionId);
    const move = async (): Promise<void> => {
      await mkdir(join(this.spoolDir, 'finished'), { recursive: true });
      await rename(from, to);
    };
    const live = this.#live.get(sessionId)?.deref();
    const run = (async () => {
      try {
        await (live ? live.retire(to, move) : move());
      } catch {
        return false; // left where it is; the next sweep tries again
      }
      this.forget(sessionId);
      return true;
    })();
    this.#moving.set(sessionId, run);
    void run.finally(() => this.#moving.delete(sessionId));
    return run;
  }

  /** The segment counts of a settled session; undefined while it is not settled. */
  settledSummary(sessionId: string): SettledSummary | undefined {
    return this.#settled.get(sessionId)?.counts;
  }

  /** Sessions whose journals this store holds in memory (the settled ones are not). */
  get heldCount(): number {
    return this.#pinned.size;
  }

  /** Session ids with a journal in the spool. */
  async list(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(join(this.spoolDir, 'sessions'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: string[] = [];
    for (const name of names) {
      if (this.#known.has(name)) {
        out.push(name);
        continue;
      }
      try {
        await access(join(this.dirOf(name), JOURNAL_FILE));
        this.#known.add(name);
        out.push(name);
      } catch {
        // a folder without a journal is not a session (or a journal was never written)
      }
    }
    return out.sort();
  }

  /** Forgets a session (after its folder is removed). */
  forget(sessionId: string): void {
    this.#loading.delete(sessionId);
    this.#live.delete(sessionId);
    this.#pinned.delete(sessionId);
    this.#settled.delete(sessionId);
    this.#known.delete(sessionId);
  }
}
