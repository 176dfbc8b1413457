// What a process must change to hold exactly what the records say: at a start (it holds nothing) and
// when a process taking over catches up with the records its predecessor wrote until it exited. Pure:
// the process applies the plan.
import { type HandleRecord, type JanusSessionRecord, sameNegotiation } from "./records.ts";

/** What the process holds now: per Janus session id, its handles as records. */
export type Held = Map<string, Map<string, HandleRecord>>;

export interface RestorePlan {
  /** Held Janus sessions the records no longer have: the process before ended them. */
  dropSessions: string[];
  /** Held handles (of kept sessions) the records no longer have, or whose negotiation changed. */
  dropHandles: Array<{ session: string; id: string }>;
  /** Janus sessions to restore (not held). */
  sessions: JanusSessionRecord[];
  /** Handles to restore: new ones, and the ones dropped above for a changed negotiation. */
  handles: HandleRecord[];
  /** How many held handles are restored again because their negotiation changed (an ICE restart). */
  replaced: number;
}

export function planRestore(
  held: Held,
  sessions: JanusSessionRecord[],
  handles: HandleRecord[],
): RestorePlan {
  const plan: RestorePlan = { dropSessions: [], dropHandles: [], sessions: [], handles: [], replaced: 0 };
  const recorded = new Set(sessions.map((s) => s.id));
  for (const id of held.keys()) if (!recorded.has(id)) plan.dropSessions.push(id);
  const bySession = new Map<string, HandleRecord[]>();
  for (const h of handles) {
    if (!recorded.has(h.session)) continue; // a handle without its session is never usable
    (bySession.get(h.session) ?? bySession.set(h.session, []).get(h.session)!).push(h);
  }
  for (const s of sessions) {
    const mine = held.get(s.id);
    const records = bySession.get(s.id) ?? [];
    if (!mine) {
      plan.sessions.push(s);
      plan.handles.push(...records);
      continue;
    }
    const ids = new Set(records.map((h) => h.id));
    for (const id of mine.keys()) if (!ids.has(id)) plan.dropHandles.push({ session: s.id, id });
    for (const r of records) {
      const current = mine.get(r.id);
      // The same negotiation: this process's own live state is the newer one; keep it.
      if (current && sameNegotiation(current, r)) continue;
      if (current) {
        plan.dropHandles.push({ session: s.id, id: r.id });
        plan.replaced++;
      }
      plan.handles.push(r);
    }
  }
  return plan;
}
