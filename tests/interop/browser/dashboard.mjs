// Opens dwbroker's dashboard in headless Chromium (Debian's, through playwright-core)
// at 1280x800:
//
//   node dashboard.mjs BASE_URL CLIENT_ID [SCREENSHOT.png]
//
// waits for the connection whose client id is CLIENT_ID ("seen <row id>"), for a
// receive rate above zero on it ("rate <n>"), writes the screenshot if asked, then
// closes the connection with the row's Close button ("closed" once the row is gone).
// With CLIENT_ID "-" it only waits for the page to fill and writes the screenshot.
// Any console error or page error fails the run (exit status 1).
import { launchChromium } from "./chromium.mjs";

const [base, clientId, screenshot] = process.argv.slice(2);
const errors = [];
const browser = await launchChromium();
let code = 1;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.body.dataset.loaded === "yes", null, { timeout: 15000 });
  if (clientId !== "-") {
    const row = page.locator("#connections tbody tr", { hasText: clientId });
    await row.first().waitFor({ timeout: 15000 });
    const id = await row.first().getAttribute("data-id");
    console.log(`seen ${id}`);
    const byId = page.locator(`#connections tbody tr[data-id="${id}"]`);
    // The In/s column: the page shows the broker's per-second sample.
    await page.waitForFunction((rowId) => {
      const cells = document.querySelector(`#connections tbody tr[data-id="${rowId}"]`)?.children;
      return cells && Number(cells[6].textContent.replace(/,/g, "")) > 0;
    }, id, { timeout: 15000 });
    console.log(`rate ${await byId.locator("td").nth(6).textContent()}`);
    if (screenshot) {
      await page.screenshot({ path: screenshot });
      console.log("screenshot");
    }
    await byId.locator("button.close").click();
    await byId.waitFor({ state: "detached", timeout: 15000 });
    console.log("closed");
  } else if (screenshot) {
    // Let the chart gather a few samples first.
    await page.waitForTimeout(5000);
    await page.screenshot({ path: screenshot });
    console.log("screenshot");
  }
  if (errors.length === 0) code = 0;
} catch (err) {
  console.error(`failed: ${err.message}`);
} finally {
  for (const e of errors) console.error(`page error: ${e}`);
  await browser.close();
}
process.exit(code);
