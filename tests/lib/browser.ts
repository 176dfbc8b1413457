// Debian's Chromium, driven by playwright-core, inside the client namespace. Never downloads a browser.
import { chromium } from "playwright-core";
import type { Browser } from "playwright-core";
import type { Topology } from "./topology.ts";
import { waitFor } from "./run.ts";

export async function launchChromium(
  t: Topology,
  opts: { secureOrigin?: string; extraArgs?: string[] } = {},
): Promise<{ browser: Browser; close(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "xrtc-chromium-" });
  const wrapper = `${dir}/chromium-in-netns`;
  // Playwright talks to the browser over a pipe, so the browser can live in another namespace.
  await Deno.writeTextFile(wrapper, `#!/bin/sh\nexec ip netns exec ${t.clientNs} /usr/bin/chromium "$@"\n`);
  await Deno.chmod(wrapper, 0o755);
  const browser = await chromium.launch({
    executablePath: wrapper,
    headless: true,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    env: { ...Deno.env.toObject(), TMPDIR: dir },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      ...(opts.secureOrigin ? [`--unsafely-treat-insecure-origin-as-secure=${opts.secureOrigin}`] : []),
      ...(opts.extraArgs ?? []),
    ],
  });
  return {
    browser,
    close: async () => {
      await browser.close().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

interface PageResult {
  dcEchoes: number;
  iceState: string;
  answerCandidates: string[];
  errors: string[];
}
export interface EchoOutcome {
  result: PageResult;
  framesDecoded: number;
  selectedRemote?: string;
}

/** Runs xRTC's own echotest page (html/echotest.html) in Chromium in the client namespace: waits for five
 * data-channel echoes and more than 30 decoded frames, and returns what the page and getStats saw. */
export async function chromiumEchotest(
  t: Topology,
  url: string,
  opts: { secureOrigin?: string; extraArgs?: string[] } = {},
): Promise<EchoOutcome> {
  const b = await launchChromium(t, opts);
  try {
    const page = await b.browser.newPage();
    await page.goto(url);
    type Page = {
      xrtcResult: PageResult;
      xrtcStats: () => Promise<{ framesDecoded: number; selectedRemote?: string }>;
    };
    await page.waitForFunction(() => (globalThis as unknown as Page).xrtcResult.dcEchoes >= 5, null, {
      timeout: 30_000,
    });
    const stats = await waitFor(
      "30 decoded frames",
      async () => {
        const s = await page.evaluate(() => (globalThis as unknown as Page).xrtcStats());
        return s.framesDecoded > 30 ? s : undefined;
      },
      20_000,
      500,
    );
    const result = await page.evaluate(() => (globalThis as unknown as Page).xrtcResult);
    return { result, ...stats };
  } finally {
    await b.close();
  }
}
