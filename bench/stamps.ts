// The times a bench packet carries, and the clock they are read on. The bench's clients and echo peer
// stamp packets with the wall clock as the kernel stamps datagrams (CLOCK_REALTIME, to a fraction of a
// microsecond) and read the kernel's receive times (FfiBackendOptions.receiveTimes) on the same clock, so
// each one-way trip is measured across processes, without the wakeup of the process that reads it.
import { timespecMs } from "../src/io/ffi_udp.ts";

const lib = Deno.dlopen("libc.so.6", {
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  nanosleep: { parameters: ["buffer", "pointer"], result: "i32" },
});
const CLOCK_REALTIME = 0;
const timespec = new Uint8Array(16);
const view = new DataView(timespec.buffer);

/** Milliseconds since the epoch. */
export function wallMs(): number {
  lib.symbols.clock_gettime(CLOCK_REALTIME, timespec);
  return timespecMs(view, 0);
}

const sleepSpec = new Uint8Array(16);
const sleepView = new DataView(sleepSpec.buffer);
let slackSet = false;

/** Blocks the calling thread for `ms` (a sender pacing its packets; the thread's event loop waits). */
export function sleepMs(ms: number): void {
  if (!slackSet) {
    // The kernel may otherwise wake a sleeper up to 50 µs late, as long as the gaps paced here (the file
    // is the main thread's, where the generator sends).
    Deno.writeTextFileSync("/proc/self/timerslack_ns", "1");
    slackSet = true;
  }
  const ns = Math.round(ms * 1e6);
  sleepView.setUint32(0, Math.floor(ns / 1e9), true);
  sleepView.setUint32(4, 0, true);
  sleepView.setUint32(8, ns % 1e9, true);
  sleepView.setUint32(12, 0, true);
  lib.symbols.nanosleep(sleepSpec, null);
}

/** A bench packet: byte 0 0x80 (RTP's first byte: media to every proxy), byte 1 the client's index, bytes
 * 2-5 its sequence number, then float64 milliseconds since the epoch: when the client sent it, when the
 * echo peer's socket received it, and when the peer sent the echo back. */
export const Stamp = { clientSent: 8, peerReceived: 16, peerSent: 24 } as const;
export const STAMPED_BYTES = 32;
