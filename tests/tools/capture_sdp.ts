// Captures the SDP fixtures: a Chromium offer, and Janus's echotest answer to it (run as root: deno run -A tests/tools/capture_sdp.ts).
import { makeTopology } from "../lib/topology.ts";
import { startJanus } from "../lib/janus.ts";
import { launchChromium } from "../lib/browser.ts";
interface BrowserPc {
  addTransceiver(kind: string): void;
  createDataChannel(label: string): void;
  createOffer(): Promise<unknown>;
  setLocalDescription(d: unknown): Promise<void>;
  localDescription: { sdp: string } | null;
}
const t = await makeTopology();
const j = await startJanus(t);
const b = await launchChromium(t, {});
try {
  const page = await b.browser.newPage();
  await page.goto("about:blank");
  // The function runs in the page, where RTCPeerConnection exists.
  const offer = await page.evaluate(async () => {
    const pc = new (globalThis as unknown as { RTCPeerConnection: new () => BrowserPc }).RTCPeerConnection();
    pc.addTransceiver("audio");
    pc.addTransceiver("video");
    pc.createDataChannel("x");
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => setTimeout(r, 1000));
    return pc.localDescription!.sdp;
  });
  await Deno.writeTextFile("tests/fixtures/chromium-offer.sdp", offer);
  const post = async (path: string, body: unknown) =>
    (await fetch(j.httpUrl + "/janus" + path, { method: "POST", body: JSON.stringify(body) })).json();
  const s = (await post("", { janus: "create", transaction: "a" })).data.id;
  const h =
    (await post(`/${s}`, { janus: "attach", plugin: "janus.plugin.echotest", transaction: "b" })).data.id;
  await post(`/${s}/${h}`, {
    janus: "message",
    transaction: "c",
    body: { audio: true, video: true },
    jsep: { type: "offer", sdp: offer },
  });
  for (let i = 0; i < 10; i++) {
    const ev = await (await fetch(`${j.httpUrl}/janus/${s}?maxev=1`)).json();
    if (ev.jsep) {
      await Deno.writeTextFile("tests/fixtures/janus-answer.sdp", ev.jsep.sdp);
      break;
    }
  }
} finally {
  await b.close();
  await j.stop();
  await t.close();
}
