import assert from "node:assert/strict";
import { makeAdminHandler } from "./admin.ts";

const TOKEN = "admin-token-0123456789";
const handler = makeAdminHandler(
  { name: "admin", proto: "admin", addr: { host: "127.0.0.1", port: 6090 }, token: TOKEN },
  {
    metricsText: () => Promise.resolve("xrtc_draining 0\n"),
    readiness: () => [{ name: "janus", ok: false, detail: "janus-a down" }],
    status: () => Promise.resolve({ sessions: [] }),
  },
);
const get = (path: string, token?: string) =>
  handler(
    new Request(`http://127.0.0.1:6090${path}`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    }),
  );

Deno.test("with a token: the bare probes answer anyone (a kubelet's probe carries no secret), the data only the token", async () => {
  assert.equal((await get("/livez")).status, 200);
  assert.equal((await get("/healthz")).status, 200);
  const ready = await get("/readyz");
  assert.equal(ready.status, 503);
  assert.equal(await ready.text(), "not ready\n", "the bare probe names no backend");
  for (const path of ["/readyz?verbose", "/metrics", "/status", "/status.json"]) {
    assert.equal((await get(path)).status, 401, `${path} without the token`);
    assert.equal((await get(path, "admin-token-012345678X")).status, 401, `${path} with a wrong token`);
  }
  assert.match(await (await get("/readyz?verbose", TOKEN)).text(), /janus-a down/);
  assert.equal(await (await get("/metrics", TOKEN)).text(), "xrtc_draining 0\n");
});
