// The state journal on a temporary directory: records survive a close and a reopen byte for byte, a
// deleted Janus session takes its handles with it, and nothing on disk (a torn record, a damaged file)
// stops a start: it is skipped or moved aside, and counted.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { StateJournal } from "./journal.ts";
import { decodeHandleRecord, decodeSessionRecord, encodeRecord, type HandleRecord } from "./records.ts";
import { handleRecord, sessionRecord } from "./test_support.ts";
import { stateRecordsSkipped } from "../telemetry/catalog.ts";

async function withDir(f: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "xrtc-journal-" });
  try {
    await f(`${dir}/state`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("records survive close and reopen exactly, bigints included; the files are the user's alone", () =>
  withDir((dir) => {
    const j = StateJournal.open(dir);
    j.putSession(sessionRecord("1001"));
    j.putHandle(handleRecord("1001", "2001"));
    j.putHandle(handleRecord("1001", "2002"));
    j.setMeta("upstream_ports", "[40000]");
    j.close();
    j.putSession(sessionRecord("late")); // after close: ignored, never thrown
    assert.equal(Deno.statSync(dir).mode! & 0o777, 0o700);
    assert.equal(Deno.statSync(`${dir}/xrtc-state.sqlite`).mode! & 0o777, 0o600);

    const again = StateJournal.open(dir);
    const loaded = again.load();
    assert.deepEqual(loaded.sessions, [sessionRecord("1001")]);
    assert.deepEqual(
      loaded.handles.sort((a, b) => a.id.localeCompare(b.id)),
      [handleRecord("1001", "2001"), handleRecord("1001", "2002")],
    );
    assert.equal(loaded.skipped, 0);
    assert.equal(again.meta("upstream_ports"), "[40000]");
    again.close();
  }));

Deno.test("the latest write of a key wins; deleting a Janus session deletes its handles", () =>
  withDir((dir) => {
    const j = StateJournal.open(dir);
    j.putSession(sessionRecord("1"));
    j.putSession(sessionRecord("2"));
    j.putHandle(handleRecord("1", "10"));
    j.putHandle(handleRecord("2", "20"));
    j.flush();
    const moved = handleRecord("2", "20");
    moved.live!.paths[0].remotePort = 50_001;
    j.putHandle(moved);
    j.deleteSession("1");
    const loaded = j.load();
    assert.deepEqual(loaded.sessions.map((s) => s.id), ["2"]);
    assert.deepEqual(loaded.handles, [moved]);
    j.deleteHandle("2/20");
    assert.deepEqual(j.load().handles, []);
    j.close();
  }));

Deno.test("a torn or forged record is skipped, counted once and deleted; the others load", () =>
  withDir((dir) => {
    const j = StateJournal.open(dir);
    j.putSession(sessionRecord("1"));
    j.putHandle(handleRecord("1", "10"));
    j.close();
    const db = new DatabaseSync(`${dir}/xrtc-state.sqlite`);
    const good = encodeRecord(handleRecord("1", "11"));
    const insert = db.prepare("INSERT INTO handles (key, session, record) VALUES (?, ?, ?)");
    insert.run("1/11", "1", good);
    insert.run("1/12", "1", good.slice(0, good.length / 2)); // torn
    insert.run("1/13", "1", '{"v":2}'); // a version this build does not know
    const badPort = handleRecord("1", "14");
    badPort.live!.paths[0].remotePort = 70_000;
    insert.run("1/14", "1", encodeRecord(badPort));
    db.prepare("INSERT INTO janus_sessions (id, record) VALUES (?, ?)").run("2", "not json");
    db.close();

    const before = stateRecordsSkipped.value({});
    const again = StateJournal.open(dir);
    const loaded = again.load();
    assert.deepEqual(loaded.handles.map((h) => h.id).sort(), ["10", "11"]);
    assert.deepEqual(loaded.sessions.map((s) => s.id), ["1"]);
    assert.equal(loaded.skipped, 4);
    assert.equal(stateRecordsSkipped.value({}) - before, 4);
    again.close();
    const third = StateJournal.open(dir);
    assert.equal(third.load().skipped, 0, "skipped rows are deleted, not counted at every start");
    third.close();
  }));

Deno.test("a damaged database file is moved aside and a new one started", () =>
  withDir((dir) => {
    Deno.mkdirSync(dir, { recursive: true });
    const garbage = new Uint8Array(8192).map((_, i) => (i * 7919) & 0xff);
    Deno.writeFileSync(`${dir}/xrtc-state.sqlite`, garbage);
    const j = StateJournal.open(dir);
    assert.deepEqual(j.load(), { sessions: [], handles: [], skipped: 0 });
    j.putSession(sessionRecord("1"));
    j.close();
    const aside = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes(".unreadable-"));
    assert.equal(aside.length, 1, "the damaged file is kept for a person to look at");
    assert.deepEqual(Deno.readFileSync(`${dir}/${aside[0]}`), garbage);
    const again = StateJournal.open(dir);
    assert.deepEqual(again.load().sessions.map((s) => s.id), ["1"]);
    again.close();
  }));

Deno.test("decoding refuses records whose fields could not be applied", () => {
  const ok = handleRecord("1", "10");
  assert.deepEqual(decodeHandleRecord(encodeRecord(ok)), ok);
  const cases: Array<(r: HandleRecord) => void> = [
    (r) => r.live!.paths.push(null as unknown as HandleRecord["live"] & never),
    (r) => r.live!.paths[0].host = "",
    (r) => r.live!.shard = -1,
    (r) => r.live!.janus = { host: "198.18.0.2", port: 0 },
    (r) => (r.spec as { mode: string }).mode = "quarter",
    (r) => r.janusLocal = { ufrag: "", pwd: "x" },
  ];
  for (const [i, spoil] of cases.entries()) {
    const r = structuredClone(ok);
    spoil(r);
    assert.equal(decodeHandleRecord(encodeRecord(r)), undefined, `case ${i}`);
  }
});

Deno.test("a WHIP resource rides on its Janus session's record; a WHIP part that does not read back is dropped alone", () => {
  const whip = {
    endpoint: "live",
    resource: "AAAAAAAAAAAAAAAAAAAAAA",
    etag: '"e"',
    handle: "2001",
    mid: "0",
  };
  const withWhip = { ...sessionRecord("1001"), whip };
  assert.deepEqual(decodeSessionRecord(encodeRecord(withWhip)), withWhip);
  const damaged = decodeSessionRecord(encodeRecord({ ...withWhip, whip: { ...whip, resource: 7 } as never }));
  assert.deepEqual(damaged, { ...sessionRecord("1001"), whip: undefined });
});
