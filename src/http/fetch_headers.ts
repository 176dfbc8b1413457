// An outgoing HTTP request (to a Janus backend, or to another xRTC node) with a deadline for its response
// headers. The deadline and the caller's signal govern the wait for headers only; the body is read (or
// streamed) under the caller's own signal and deadlines.
import { linkSignals } from "./signals.ts";

export type HeadersResult = { response: Response } | { error: string; timedOut: boolean };

export async function fetchHeaders(
  url: string,
  init: { method: string; headers: Headers; body: BodyInit | null },
  headerTimeoutMs: number,
  client: Deno.HttpClient,
  signal?: AbortSignal,
): Promise<HeadersResult> {
  const timeout = new AbortController();
  const timer = setTimeout(
    () => timeout.abort(new Error(`no response headers in ${headerTimeoutMs} ms`)),
    headerTimeoutMs,
  );
  const linked = signal ? linkSignals(timeout.signal, signal) : { signal: timeout.signal, dispose: () => {} };
  try {
    return { response: await fetch(url, { ...init, client, signal: linked.signal, redirect: "manual" }) };
  } catch (e) {
    const timedOut = timeout.signal.aborted;
    const error = timedOut
      ? `no response headers in ${headerTimeoutMs} ms`
      : e instanceof Error
      ? e.message
      : String(e);
    return { error, timedOut };
  } finally {
    clearTimeout(timer);
    linked.dispose();
  }
}
