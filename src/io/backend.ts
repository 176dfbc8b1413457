// Opens the datagram backend routes.yml or the command line chose.
import type { IoBackend } from "../config/types.ts";
import type { DatagramBackend } from "./types.ts";
import { DenoUdpBackend } from "./deno_udp.ts";

export async function createBackend(kind: IoBackend): Promise<DatagramBackend> {
  if (kind === "ffi") {
    const { FfiUdpBackend } = await import("./ffi_udp.ts");
    return FfiUdpBackend.open();
  }
  return new DenoUdpBackend();
}
