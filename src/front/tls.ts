// Certificates of a listener, read when it starts and again on reload.
import type { ListenerService } from "../config/types.ts";

export interface TlsFiles {
  cert: string;
  key: string;
}

export async function readTls(listener: ListenerService): Promise<TlsFiles | undefined> {
  const { tlsCrtFile, tlsKeyFile } = listener.net;
  if (!tlsCrtFile || !tlsKeyFile) return undefined;
  return { cert: await Deno.readTextFile(tlsCrtFile), key: await Deno.readTextFile(tlsKeyFile) };
}
