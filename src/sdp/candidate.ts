// ICE candidate attribute (RFC 8839 §5.1): parse and serialize, keeping extensions in order.

export class CandidateError extends Error {
  override name = "CandidateError";
}

export interface Candidate {
  foundation: string;
  component: number;
  transport: string; // "udp" | "tcp", kept as written (lower-cased for comparisons)
  priority: number;
  address: string;
  port: number;
  type: string; // host | srflx | prflx | relay
  relatedAddress?: string;
  relatedPort?: number;
  tcpType?: string; // active | passive | so (RFC 6544)
  /** Every other extension attribute, name/value pairs in order. */
  extensions: Array<[string, string]>;
}

/** Parses the value of an a=candidate line, with or without the "candidate:" / "a=candidate:" prefix. */
export function parseCandidate(line: string): Candidate {
  const value = line.trim().replace(/^a=/, "").replace(/^candidate:/i, "");
  const f = value.split(/\s+/);
  if (f.length < 8 || f[6] !== "typ") {
    throw new CandidateError(`malformed candidate: ${JSON.stringify(line)}`);
  }
  const component = Number(f[1]), priority = Number(f[3]), port = Number(f[5]);
  if (
    !Number.isInteger(component) || !Number.isInteger(priority) || !Number.isInteger(port) || port < 0 ||
    port > 65535
  ) {
    throw new CandidateError(`malformed candidate numbers: ${JSON.stringify(line)}`);
  }
  const c: Candidate = {
    foundation: f[0],
    component,
    transport: f[2],
    priority,
    address: f[4],
    port,
    type: f[7],
    extensions: [],
  };
  for (let i = 8; i + 1 < f.length; i += 2) {
    const [name, v] = [f[i], f[i + 1]];
    if (name === "raddr") c.relatedAddress = v;
    else if (name === "rport") c.relatedPort = Number(v);
    else if (name === "tcptype") c.tcpType = v;
    else c.extensions.push([name, v]);
  }
  return c;
}

/** Serializes to the attribute value "candidate:..." (no "a=" prefix). */
export function formatCandidate(c: Candidate): string {
  let s =
    `candidate:${c.foundation} ${c.component} ${c.transport} ${c.priority} ${c.address} ${c.port} typ ${c.type}`;
  if (c.relatedAddress !== undefined) s += ` raddr ${c.relatedAddress}`;
  if (c.relatedPort !== undefined) s += ` rport ${c.relatedPort}`;
  if (c.tcpType !== undefined) s += ` tcptype ${c.tcpType}`;
  for (const [k, v] of c.extensions) s += ` ${k} ${v}`;
  return s;
}

/** Candidate priority (RFC 8445 §5.1.2.1). */
export function candidatePriority(
  typePreference: number,
  localPreference: number,
  component: number,
): number {
  return typePreference * 2 ** 24 + localPreference * 2 ** 8 + (256 - component);
}
