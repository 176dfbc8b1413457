// Socket-free test parts for the media plane: a client and a Janus of the tests' own on an in-memory
// network (io/memory_udp.ts), built from the same STUN codec, and a plane driven by a manual clock.
// Used by the unit tests beside the code; never by xRTC itself.
import {
  Attr,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeXorAddress,
  getUsername,
  parseStun,
  type StunMessage,
  verifyIntegrity,
} from "../stun/message.ts";
import { mustPeer, type PeerAddress } from "../io/address.ts";
import { ManualClock } from "../io/clock.ts";
import { Periodic, type PeriodicTask, type PeriodicWork } from "../io/periodic.ts";
import { type MemoryBackend, MemoryNetwork } from "../io/memory_udp.ts";
import type { DatagramBackend, DatagramSocket } from "../io/types.ts";
import type { Candidate } from "../sdp/candidate.ts";
import { buildCheck } from "./check.ts";
import { type IceCredentials, randomCredentials, randomTieBreaker } from "./credentials.ts";
import { ClaimBoard } from "./shards/claims.ts";
import { MediaPlane, type MediaPlaneOptions } from "./shards/media_plane.ts";
import type { FullSpec, HalfSpec } from "./negotiation/spec.ts";
import type { EndReason } from "../telemetry/catalog.ts";
import { DEFAULT_JANUS_KEEPALIVE_MS } from "../config/types.ts";

export const XRTC_PUBLIC = "198.19.0.1";
export const ICE_PORT = 6001;
export const JANUS_ADDR = "198.18.0.2";

const UTF8 = new TextEncoder();

function isRequest(d: Uint8Array): boolean {
  return d.length >= 20 && d[0] === 0 && d[1] === 1;
}

/** A client: sends signed checks to xRTC, answers xRTC's checks signed with its own password (unless
 * told not to), and keeps what else it receives. */
export class TestClient {
  readonly socket: DatagramSocket;
  readonly media: Uint8Array[] = [];
  readonly requests: StunMessage[] = [];
  readonly responses: StunMessage[] = [];
  answersChecks = true;

  constructor(
    readonly net: MemoryNetwork,
    readonly backend: MemoryBackend,
    readonly address: PeerAddress,
    /** Its own credentials (from its SDP) and those xRTC gave it. */
    public own: IceCredentials,
    public xrtc: IceCredentials,
    readonly target = mustPeer(XRTC_PUBLIC, ICE_PORT),
  ) {
    this.socket = backend.bind({ host: address.host, port: address.port }, (data) => this.#receive(data));
  }

  #receive(data: Uint8Array): void {
    if (data[0] > 3) return void this.media.push(data.slice());
    const msg = parseStun(data.slice());
    if (msg.type !== BINDING_REQUEST) return void this.responses.push(msg);
    this.requests.push(msg);
    if (!this.answersChecks || !verifyIntegrity(msg, UTF8.encode(this.own.pwd))) return;
    if (getUsername(msg) !== `${this.own.ufrag}:${this.xrtc.ufrag}`) return;
    this.socket.send(
      buildStun({
        type: BINDING_SUCCESS,
        transactionId: msg.transactionId,
        attributes: [[Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(this.address, msg.transactionId)]],
        integrityKey: UTF8.encode(this.own.pwd),
        fingerprint: true,
      }),
      this.target,
    );
  }

  /** A connectivity check to xRTC (RFC 8445 §7.2.2), controlling. */
  check(o: { nominate?: boolean; pwd?: string; ufrag?: string } = {}): Uint8Array {
    return buildCheck({
      receiverUfrag: o.ufrag ?? this.xrtc.ufrag,
      senderUfrag: this.own.ufrag,
      key: UTF8.encode(o.pwd ?? this.xrtc.pwd),
      priority: 1853817087,
      controlling: true,
      tieBreaker: 99n,
      useCandidate: o.nominate,
    });
  }

  sendCheck(o: { nominate?: boolean; pwd?: string; ufrag?: string } = {}): void {
    this.socket.send(this.check(o), this.target);
  }

  send(data: Uint8Array): void {
    this.socket.send(data, this.target);
  }
}

/** Janus, as far as ICE and media go: answers checks signed with its password, checks back when asked
 * (controlled or controlling), and echoes media to where it came from. */
export class TestJanus {
  readonly socket: DatagramSocket;
  readonly media: Uint8Array[] = [];
  readonly requests: StunMessage[] = [];
  readonly responses: StunMessage[] = [];
  echo = true;
  answersChecks = true;

  constructor(
    readonly net: MemoryNetwork,
    backend: MemoryBackend,
    readonly address: PeerAddress,
    readonly own: IceCredentials,
  ) {
    this.socket = backend.bind(
      { host: address.host, port: address.port },
      (data, from) => this.#receive(data, from),
    );
  }

  candidate(): Candidate {
    return {
      foundation: "1",
      component: 1,
      transport: "udp",
      priority: 2130706431,
      address: this.address.host,
      port: this.address.port,
      type: "host",
      extensions: [],
    };
  }

  #receive(data: Uint8Array, from: PeerAddress): void {
    if (data[0] > 3) {
      this.media.push(data.slice());
      if (this.echo) this.socket.send(data, from);
      return;
    }
    const msg = parseStun(data.slice());
    if (!isRequest(data)) return void this.responses.push(msg);
    this.requests.push(msg);
    if (!this.answersChecks || !verifyIntegrity(msg, UTF8.encode(this.own.pwd))) return;
    this.socket.send(
      buildStun({
        type: BINDING_SUCCESS,
        transactionId: msg.transactionId,
        attributes: [[Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(from, msg.transactionId)]],
        integrityKey: UTF8.encode(this.own.pwd),
        fingerprint: true,
      }),
      from,
    );
  }
}

export interface PlaneHarness {
  net: MemoryNetwork;
  clock: ManualClock;
  plane: MediaPlane;
  claims: ClaimBoard;
  ended: Array<{ id: string; reason: EndReason }>;
  /** Runs the network until quiet, ticking the plane's timers once. */
  settle(): void;
  /** Moves time on, ticking and sweeping the plane each step (with `periodic`: running its tasks as they
   * fall due). */
  advance(ms: number, step?: number): void;
  /** With `periodic`: the plane's periodic tasks. */
  periodic?: ManualPeriodic;
}

/** A backend's periodic tasks (DatagramBackend.every) on a manual clock: run when `runDue` finds their
 * time has come, each run counted. */
export class ManualPeriodic {
  readonly #tasks: Periodic[] = [];
  /** Runs of each task so far, by its period. */
  readonly runs = new Map<number, number>();

  constructor(readonly clock: ManualClock) {}

  readonly every = (ms: number, work: PeriodicWork): PeriodicTask => {
    const task = new Periodic(ms, work, () => {}, () => this.clock.now());
    this.#tasks.push(task);
    return task;
  };

  /** Tasks running now, by period. */
  active(): number[] {
    return this.#tasks.filter((t) => t.active).map((t) => t.ms);
  }

  runDue(): void {
    const now = this.clock.now();
    for (const task of [...this.#tasks]) {
      if (!task.active || now < task.due) continue;
      this.runs.set(task.ms, (this.runs.get(task.ms) ?? 0) + 1);
      task.run(now);
    }
  }
}

export function planeHarness(
  o: {
    consentTimeoutMs?: number;
    shard?: number;
    net?: MemoryNetwork;
    claims?: ClaimBoard;
    /** The shared UDP port's number, or false for none (a main thread beside worker shards). */
    port?: number | false;
    handoff?: MediaPlane["opts"]["handoff"];
    /** The options of a main thread that relays ICE-TCP, or of the worker it relays to. */
    relaying?: Pick<MediaPlaneOptions, "claimFor" | "tcpRelay" | "relayBack">;
    /** The plane runs its own periodic tasks (on the manual clock) instead of the harness calling tick()
     * and maintain() every step. */
    periodic?: boolean;
  } = {},
): PlaneHarness {
  const net = o.net ?? new MemoryNetwork();
  const clock = new ManualClock();
  const claims = o.claims ?? ClaimBoard.create(64);
  const ended: Array<{ id: string; reason: EndReason }> = [];
  const periodic = o.periodic ? new ManualPeriodic(clock) : undefined;
  const backend: DatagramBackend = net.backend();
  if (periodic) backend.every = periodic.every;
  const plane = new MediaPlane({
    backend,
    shard: o.shard ?? 0,
    claims,
    consentTimeoutMs: o.consentTimeoutMs ?? 30_000,
    janusKeepaliveMs: DEFAULT_JANUS_KEEPALIVE_MS,
    reusePort: false,
    onEnded: (id, reason) => ended.push({ id, reason }),
    handoff: o.handoff ?? (() => {}),
    clock,
    autoTick: periodic !== undefined,
    ...o.relaying,
  });
  if (o.port !== false) plane.addUdpPort("ice", XRTC_PUBLIC, o.port ?? ICE_PORT);
  const settle = () => {
    for (let i = 0; i < 10; i++) {
      net.deliver();
      if (periodic) periodic.runDue();
      else plane.tick(clock.now());
      if (net.queued === 0) break;
    }
    net.deliver();
  };
  return {
    net,
    clock,
    plane,
    claims,
    ended,
    settle,
    periodic,
    advance(ms: number, step = 50) {
      for (let t = 0; t < ms; t += step) {
        clock.advance(step);
        if (periodic) periodic.runDue();
        else {
          plane.tick(clock.now());
          plane.maintain(clock.now());
        }
        net.deliver();
      }
    },
  };
}

/** A half-proxy spec towards `janus`, as the negotiator would make it for a client's offer. */
export function halfSpec(claims: ClaimBoard, janus: TestJanus, client: IceCredentials, id = "1/2"): HalfSpec {
  const clientFacing = randomCredentials();
  return {
    id,
    mode: "half",
    localUfrag: clientFacing.ufrag,
    ticket: claims.allocate(),
    client,
    janusCandidates: [janus.candidate()],
    answeredAt: 0,
    clientFacing,
    janusLocal: randomCredentials(),
    janusRemote: janus.own,
    janusControlling: true,
    tieBreaker: randomTieBreaker(),
  };
}

/** A full-proxy spec towards `janus`: the client checks Janus's password through xRTC's ufrag. */
export function fullSpec(claims: ClaimBoard, janus: TestJanus, client: IceCredentials, id = "1/2"): FullSpec {
  return {
    id,
    mode: "full",
    localUfrag: randomCredentials().ufrag,
    ticket: claims.allocate(),
    client,
    janusCandidates: [janus.candidate()],
    answeredAt: 0,
    janus: janus.own,
    icetcp: false,
  };
}

/** What xRTC gave the client for a spec: its ufrag and the password the client signs with. */
export function facing(spec: HalfSpec | FullSpec): IceCredentials {
  return spec.mode === "half" ? spec.clientFacing : { ufrag: spec.localUfrag, pwd: spec.janus.pwd };
}

export function srtp(tag: number, size = 100): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = 0x80;
  p[1] = tag & 0x7f;
  return p;
}
