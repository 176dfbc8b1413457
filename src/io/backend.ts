// Opens the datagram backend routes.yml or the command line chose. "auto" (the default) is the batched
// libc backend where it works (Linux with FFI permitted), else the portable one, with the reason.
import type { DatagramBackend, IoBackendName } from "./types.ts";
import type { FfiBackendOptions } from "./ffi_udp.ts";
import { DenoUdpBackend } from "./deno_udp.ts";

export type IoBackendChoice = "auto" | "deno" | "ffi";

export interface OpenedBackend {
  backend: DatagramBackend;
  /** Why "auto" did not give the ffi backend. */
  fallback?: string;
}

export async function createBackend(
  kind: IoBackendChoice,
  /** The ffi backend's options (the deno backend has none). */
  opts: FfiBackendOptions = {},
): Promise<OpenedBackend> {
  if (kind === "deno") return { backend: new DenoUdpBackend() };
  const { FfiUdpBackend, FfiUnavailable } = await import("./ffi_udp.ts");
  try {
    return { backend: FfiUdpBackend.open(opts) };
  } catch (e) {
    if (kind === "ffi" || !(e instanceof FfiUnavailable)) throw e;
    return { backend: new DenoUdpBackend(), fallback: e.message };
  }
}

/** Which backend a choice gives on this machine, and why (for --check-config), without keeping it. */
export async function describeBackend(kind: IoBackendChoice): Promise<BackendInEffect> {
  try {
    const { backend, fallback } = await createBackend(kind);
    await backend.close();
    return { name: backend.name, text: fallback ? `${backend.name} (${fallback})` : backend.name };
  } catch (e) {
    return { text: `unavailable: ${e instanceof Error ? e.message : e}` };
  }
}

/** The backend a start would use (undefined when none opens), and how --check-config shows it. */
export interface BackendInEffect {
  name?: IoBackendName;
  text: string;
}
