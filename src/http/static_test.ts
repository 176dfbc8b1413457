import assert from "node:assert/strict";
import { StaticFiles } from "./static.ts";

Deno.test("static files: served from root, nothing outside it, no root means 404", async () => {
  const base = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${base}/root/sub`, { recursive: true });
    await Deno.writeTextFile(`${base}/root/index.html`, "<p>index</p>");
    await Deno.writeTextFile(`${base}/root/sub/a.js`, "let a");
    await Deno.writeTextFile(`${base}/secret.txt`, "secret");
    await Deno.symlink(`${base}/secret.txt`, `${base}/root/link.txt`);
    await Deno.symlink(`${base}`, `${base}/root/up`);
    const files = new StaticFiles(`${base}/root`);
    const get = async (p: string) => {
      const r = await files.serve(new Request(`http://x${p}`), p);
      return [r.status, await r.text(), r.headers.get("content-type")] as const;
    };
    assert.deepEqual(await get("/"), [200, "<p>index</p>", "text/html; charset=utf-8"]);
    assert.deepEqual((await get("/sub/a.js")).slice(0, 2), [200, "let a"]);
    for (
      const p of [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/%2E%2E/%2e%2e/secret.txt",
        "/link.txt",
        "/up/secret.txt",
        "/..%2fsecret.txt",
        "/%00",
        "/nope",
      ]
    ) {
      const [status, body] = await get(p);
      assert.equal(status, 404, p);
      assert.ok(!body.includes("secret"), p);
    }
    assert.equal((await get("/%zz"))[0], 400);
    const none = new StaticFiles(undefined);
    assert.equal((await none.serve(new Request("http://x/etc/passwd"), "/etc/passwd")).status, 404);
    const post = await files.serve(new Request("http://x/", { method: "POST" }), "/");
    assert.equal(post.status, 405);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
