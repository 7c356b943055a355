// Debian's headless Chromium through playwright-core, as every browser test here
// launches it: the flags keep it off the (closed) network and let it run as root in
// a container; $CHROMIUM overrides /usr/bin/chromium.
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: 30000,
  });
}
