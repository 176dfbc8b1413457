// ICE credentials (RFC 8839 §5.4): ufrag ≥ 4 and pwd ≥ 22 ice-chars, random.
const ICE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function randomIceString(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let s = "";
  for (const b of bytes) s += ICE_CHARS[b & 63];
  return s;
}

export const UFRAG_LENGTH = 8;
export const PWD_LENGTH = 24;

export interface IceCredentials {
  ufrag: string;
  pwd: string;
}

export function randomCredentials(ufrag = randomIceString(UFRAG_LENGTH)): IceCredentials {
  return { ufrag, pwd: randomIceString(PWD_LENGTH) };
}

export function randomTieBreaker(): bigint {
  return new DataView(crypto.getRandomValues(new Uint8Array(8)).buffer).getBigUint64(0);
}
