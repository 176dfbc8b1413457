// Debian's Chromium, driven by playwright-core, inside the client namespace. Never downloads a browser.
import { chromium } from "playwright-core";
import type { Browser } from "playwright-core";
import type { Topology } from "./topology.ts";

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
