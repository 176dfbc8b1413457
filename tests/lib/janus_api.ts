// The Janus API as the tests speak it directly (without a client library): a POST, and a request-reply
// over a Janus WebSocket.
export type Msg = Record<string, unknown>;

/** A Janus API POST with a fresh transaction; the HTTP status and the JSON reply. */
export async function janusPost(url: string, body: Msg): Promise<{ status: number; body: Msg }> {
  const r = await fetch(url, {
    method: "POST",
    body: JSON.stringify({ transaction: crypto.randomUUID(), ...body }),
  });
  return { status: r.status, body: await r.json() };
}

/** One request-reply over a Janus WebSocket: the reply with the request's transaction ("ack" is the reply
 * only to a keepalive or a trickle; otherwise the answer that follows it). */
export function wsRequest(ws: WebSocket, body: Msg): Promise<Msg> {
  const transaction = crypto.randomUUID();
  const ackIsReply = body.janus === "keepalive" || body.janus === "trickle";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply to ${body.janus}`)), 5_000);
    const onMessage = (e: MessageEvent) => {
      const m = JSON.parse(e.data);
      if (m.transaction !== transaction || (m.janus === "ack" && !ackIsReply)) return;
      clearTimeout(timer);
      ws.removeEventListener("message", onMessage);
      resolve(m);
    };
    ws.addEventListener("message", onMessage);
    ws.send(JSON.stringify({ ...body, transaction }));
  });
}

/** A Janus WebSocket (subprotocol janus-protocol), open. */
export async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, "janus-protocol");
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return ws;
}
