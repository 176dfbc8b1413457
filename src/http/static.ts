// Static files from http.root for requests no route takes. Nothing outside root is ever served:
// the decoded path is normalised, "..", NUL and backslashes are refused, and the real path (after
// symlinks) must still be inside root's real path. No root configured: 404, never the filesystem.
import { extname, join, resolve } from "node:path";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

export function notFound(): Response {
  return new Response("not found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

export class StaticFiles {
  #realRoot?: string;
  constructor(readonly root: string | undefined) {}

  async serve(req: Request, pathname: string): Promise<Response> {
    if (!this.root) return notFound();
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      return new Response("bad request\n", { status: 400 });
    }
    if (decoded.includes("\0") || decoded.includes("\\") || decoded.split("/").includes("..")) {
      return notFound();
    }
    this.#realRoot ??= await Deno.realPath(resolve(this.root)).catch(() => undefined);
    const realRoot = this.#realRoot;
    if (!realRoot) return notFound();
    let target = join(realRoot, decoded);
    try {
      let real = await Deno.realPath(target);
      if (real !== realRoot && !real.startsWith(realRoot + "/")) return notFound();
      let info = await Deno.stat(real);
      if (info.isDirectory) {
        target = join(real, "index.html");
        real = await Deno.realPath(target);
        if (!real.startsWith(realRoot + "/")) return notFound();
        info = await Deno.stat(real);
      }
      if (!info.isFile) return notFound();
      const headers = {
        "content-type": TYPES[extname(real).toLowerCase()] ?? "application/octet-stream",
        "content-length": String(info.size),
      };
      if (req.method === "HEAD") return new Response(null, { headers });
      const file = await Deno.open(real, { read: true });
      return new Response(file.readable, { headers });
    } catch {
      return notFound();
    }
  }
}
