// Reading and streaming HTTP bodies under a size limit and a deadline, in both directions.

export type BodyResult = { bytes: Uint8Array } | { error: "too_large" | "timeout" | "aborted" };

/** Reads a whole body up to `limit` bytes, within `timeoutMs`. */
export async function readBody(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<BodyResult> {
  if (!body) return { bytes: new Uint8Array(0) };
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"timeout">((resolve) =>
    timer = setTimeout(() => resolve("timeout"), timeoutMs)
  );
  let onAbort: (() => void) | undefined;
  const aborted = signal
    ? new Promise<"aborted">((resolve) => {
      if (signal.aborted) resolve("aborted");
      signal.addEventListener("abort", onAbort = () => resolve("aborted"), { once: true });
    })
    : undefined;
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), deadline, ...(aborted ? [aborted] : [])]);
      if (next === "timeout" || next === "aborted") {
        await reader.cancel().catch(() => {});
        return { error: next };
      }
      if (next.done) break;
      size += next.value.length;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        return { error: "too_large" };
      }
      chunks.push(next.value);
    }
  } catch {
    return { error: "aborted" };
  } finally {
    clearTimeout(timer);
    if (onAbort) signal!.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) out.set(c, o), o += c.length;
  return { bytes: out };
}

/** A stream guard: errors once more than `limit` bytes went through, or when no chunk has arrived for
 * `idleMs`. `exceeded` tells afterwards whether the limit (not the peer) ended it. */
export function guardedStream(limit: number, idleMs: number): {
  stream: TransformStream<Uint8Array, Uint8Array>;
  exceeded: () => boolean;
} {
  let size = 0;
  let over = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const fail = (ctl: TransformStreamDefaultController<Uint8Array>, message: string) => {
    try {
      ctl.error(new Error(message));
    } catch { /* the stream already ended */ }
  };
  const arm = (ctl: TransformStreamDefaultController<Uint8Array>) => {
    timer = setTimeout(() => fail(ctl, `no data for ${idleMs} ms`), idleMs);
    Deno.unrefTimer(timer);
  };
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    start(ctl) {
      arm(ctl);
    },
    transform(chunk, ctl) {
      clearTimeout(timer);
      size += chunk.length;
      if (size > limit) {
        over = true;
        fail(ctl, "body too large");
        return;
      }
      ctl.enqueue(chunk);
      arm(ctl);
    },
    flush() {
      clearTimeout(timer);
    },
  });
  return { stream, exceeded: () => over };
}
