// The one data-channel-only SDP the bench's clients offer and its echo peer answers with.
export function benchSdp(
  o: { ufrag: string; pwd: string; setup: "actpass" | "active"; candidatePort?: number },
): string {
  const lines = [
    "v=0",
    "o=- 1 1 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    `a=ice-ufrag:${o.ufrag}`,
    `a=ice-pwd:${o.pwd}`,
    "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
    `a=setup:${o.setup}`,
    "a=mid:0",
    "a=sctp-port:5000",
  ];
  if (o.candidatePort !== undefined) {
    lines.push(`a=candidate:1 1 udp 2130706431 127.0.0.1 ${o.candidatePort} typ host`, "a=end-of-candidates");
  }
  return lines.join("\r\n") + "\r\n";
}
