// The durable record of live sessions, in SQLite (node:sqlite) under the state directory: one row per
// Janus session and per handle (records.ts), and a few node facts (the upstream ports the Janus legs use).
// Writes are collected in memory and flushed in one transaction every FLUSH_MS, off the packet path. A
// record that does not read back is skipped and counted; a database that cannot be opened is moved
// aside and a new one started: the state never stops xRTC from starting.
import { DatabaseSync } from "node:sqlite";
import {
  decodeHandleRecord,
  decodeSessionRecord,
  encodeRecord,
  type HandleRecord,
  type JanusSessionRecord,
} from "./records.ts";
import { stateRecordsSkipped, stateWrites } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

/** How often pending changes are written: a crash loses at most this much of the latest changes. */
export const FLUSH_MS = 100;

export interface LoadedState {
  sessions: JanusSessionRecord[];
  handles: HandleRecord[];
  skipped: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS janus_sessions (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS handles (key TEXT PRIMARY KEY, session TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export class StateJournal {
  #db: DatabaseSync;
  readonly #sessions = new Map<string, JanusSessionRecord | null>();
  readonly #handles = new Map<string, HandleRecord | null>();
  #timer?: ReturnType<typeof setInterval>;
  #closed = false;

  private constructor(db: DatabaseSync, readonly path: string) {
    this.#db = db;
  }

  /** Opens (or creates) the journal in `dir`. */
  static open(dir: string): StateJournal {
    // The records hold ICE passwords: the directory and the database are the process user's alone.
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = `${dir}/xrtc-state.sqlite`;
    let db: DatabaseSync;
    try {
      db = StateJournal.#openDb(path);
    } catch (e) {
      const aside = `${path}.unreadable-${Date.now()}`;
      log("error", "state_unreadable", { path, moved_to: aside, error: e });
      for (const suffix of ["", "-wal", "-shm"]) {
        try {
          Deno.renameSync(path + suffix, aside + suffix);
        } catch { /* absent */ }
      }
      db = StateJournal.#openDb(path);
    }
    const j = new StateJournal(db, path);
    j.#timer = setInterval(() => j.flush(), FLUSH_MS);
    return j;
  }

  static #openDb(path: string): DatabaseSync {
    Deno.writeFileSync(path, new Uint8Array(), { append: true, mode: 0o600 });
    Deno.chmodSync(path, 0o600);
    const db = new DatabaseSync(path);
    // WAL: readers (a new process taking over) and one writer at a time, durable at each commit.
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000;");
    db.exec(SCHEMA);
    db.prepare("SELECT count(*) FROM handles").get(); // a damaged file fails here, not later
    return db;
  }

  /** Every record on disk (pending writes first flushed). Unreadable records are skipped and counted. */
  load(): LoadedState {
    this.flush();
    let skipped = 0;
    const sessions: JanusSessionRecord[] = [];
    const handles: HandleRecord[] = [];
    try {
      for (const row of this.#db.prepare("SELECT id, record FROM janus_sessions").all()) {
        const r = decodeSessionRecord(String(row.record));
        if (r) sessions.push(r);
        else {
          skipped++;
          this.deleteSession(String(row.id));
        }
      }
      const known = new Set(sessions.map((s) => s.id));
      for (const row of this.#db.prepare("SELECT key, record FROM handles").all()) {
        const r = decodeHandleRecord(String(row.record));
        if (r && known.has(r.session)) handles.push(r);
        else {
          // Unreadable, or the handle of a Janus session without a record: never usable.
          skipped++;
          this.deleteHandle(String(row.key));
        }
      }
    } catch (e) {
      log("error", "state_read_failed", { path: this.path, error: e });
    }
    if (skipped) {
      // Counted once: the rows are deleted with the next flush.
      stateRecordsSkipped.inc({}, skipped);
      log("warn", "state_records_skipped", { count: skipped });
    }
    return { sessions, handles, skipped };
  }

  putSession(r: JanusSessionRecord): void {
    if (!this.#closed) this.#sessions.set(r.id, r);
  }

  deleteSession(id: string): void {
    if (!this.#closed) this.#sessions.set(id, null);
  }

  putHandle(r: HandleRecord): void {
    if (!this.#closed) this.#handles.set(`${r.session}/${r.id}`, r);
  }

  deleteHandle(key: string): void {
    if (!this.#closed) this.#handles.set(key, null);
  }

  meta(key: string): string | undefined {
    const row = this.#db.prepare("SELECT value FROM meta WHERE key = ?").get(key);
    return row ? String(row.value) : undefined;
  }

  setMeta(key: string, value: string): void {
    this.#db.prepare(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )
      .run(key, value);
  }

  /** Writes pending changes in one transaction. */
  flush(): void {
    if (this.#sessions.size === 0 && this.#handles.size === 0) return;
    const sessions = [...this.#sessions];
    const handles = [...this.#handles];
    this.#sessions.clear();
    this.#handles.clear();
    try {
      this.#db.exec("BEGIN");
      const putS = this.#db.prepare(
        "INSERT INTO janus_sessions (id, record) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record",
      );
      const delS = this.#db.prepare("DELETE FROM janus_sessions WHERE id = ?");
      const delSH = this.#db.prepare("DELETE FROM handles WHERE session = ?");
      const putH = this.#db.prepare(
        "INSERT INTO handles (key, session, record) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET record = excluded.record",
      );
      const delH = this.#db.prepare("DELETE FROM handles WHERE key = ?");
      for (const [id, r] of sessions) {
        if (r) putS.run(id, encodeRecord(r));
        else {
          delS.run(id);
          delSH.run(id);
        }
      }
      for (const [key, r] of handles) {
        if (r) putH.run(key, r.session, encodeRecord(r));
        else delH.run(key);
      }
      this.#db.exec("COMMIT");
      stateWrites.inc({}, sessions.length + handles.length);
    } catch (e) {
      try {
        this.#db.exec("ROLLBACK");
      } catch { /* no transaction open */ }
      log("error", "state_write_failed", { path: this.path, error: e });
      // Written next time, unless a newer change of the same key came meanwhile.
      for (const [k, r] of sessions) if (!this.#sessions.has(k)) this.#sessions.set(k, r);
      for (const [k, r] of handles) if (!this.#handles.has(k)) this.#handles.set(k, r);
    }
  }

  /** Stops recording (what is on disk stays, for the next process), and closes the database. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      this.#db.close();
    } catch { /* closed */ }
  }
}
