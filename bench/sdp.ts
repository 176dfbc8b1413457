// The SDP the bench's clients offer and its echo peer answers with: of a browser's size and shape (a
// bundle of audio, video and a data channel, the codec lines a browser lists), so what xRTC keeps per
// session is measured against real-sized offers and answers. Only the data channel's transport is used.
export function benchSdp(
  o: { ufrag: string; pwd: string; setup: "actpass" | "active"; candidatePort?: number },
): string {
  const transport = [
    `a=ice-ufrag:${o.ufrag}`,
    `a=ice-pwd:${o.pwd}`,
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
    `a=setup:${o.setup}`,
  ];
  const lines = [
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1 2",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS bench",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    ...transport,
    "a=mid:0",
    "a=sctp-port:5000",
    "a=max-message-size:262144",
  ];
  if (o.candidatePort !== undefined) {
    lines.push(`a=candidate:1 1 udp 2130706431 127.0.0.1 ${o.candidatePort} typ host`, "a=end-of-candidates");
  }
  lines.push(...rtpSection("audio", 1, o.setup, transport), ...rtpSection("video", 2, o.setup, transport));
  return lines.join("\r\n") + "\r\n";
}

/** An audio or video section with a browser's codec list (payload types, feedback, parameters, the
 * retransmission twin of each video codec) and its stream's identifiers. */
function rtpSection(kind: "audio" | "video", mid: number, setup: string, transport: string[]): string[] {
  const codecs = kind === "audio"
    ? [["111", "opus/48000/2", "minptime=10;useinbandfec=1"], ["63", "red/48000/2", "111/111"]]
    : ["VP8", "VP9", "VP9", "H264", "H264", "H264", "H264", "AV1", "H265", "H264", "H264", "VP9"].map((
      name,
      i,
    ) => [
      String(96 + 2 * i),
      `${name}/90000`,
      name === "H264" ? `level-asymmetry-allowed=1;packetization-mode=${i % 2};profile-level-id=42e01f` : "",
    ]);
  const payloads = kind === "audio"
    ? codecs.map((c) => c[0])
    : codecs.flatMap((c) => [c[0], String(+c[0] + 1)]);
  const feedback = kind === "audio"
    ? ["transport-cc"]
    : ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"];
  const lines = [
    `m=${kind} 9 UDP/TLS/RTP/SAVPF ${payloads.join(" ")}`,
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    ...transport,
    `a=mid:${mid}`,
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    setup === "actpass" ? "a=sendrecv" : "a=recvonly",
    `a=msid:bench bench-${kind}`,
    "a=rtcp-mux",
    "a=rtcp-rsize",
  ];
  for (const [pt, rtpmap, fmtp] of codecs) {
    lines.push(`a=rtpmap:${pt} ${rtpmap}`, ...feedback.map((f) => `a=rtcp-fb:${pt} ${f}`));
    if (fmtp) lines.push(`a=fmtp:${pt} ${fmtp}`);
    if (kind === "video") lines.push(`a=rtpmap:${+pt + 1} rtx/90000`, `a=fmtp:${+pt + 1} apt=${pt}`);
  }
  const ssrc = 1000 + mid;
  lines.push(`a=ssrc:${ssrc} cname:benchbenchbench1`, `a=ssrc:${ssrc} msid:bench bench-${kind}`);
  return lines;
}
