// Drives headless Chromium (Debian's /usr/bin/chromium, through playwright-core) for
// netlab's map tests: the Rust test sends one command per line on stdin, this answers one
// JSON line per command on stdout. The Rust side keeps the Docker fixtures and the
// assertions; this only looks at the page.
//
// Commands ({"op": ...}):
//   open {url}                      load the page; every request the page makes is noted
//   wait {selector, timeout_ms}     until an element matches           → {ok}
//   gone {selector, timeout_ms}     until none matches                 → {ok}
//   text {selector}                 the first match's textContent      → {ok, text}
//   attr {selector, name}           one attribute of the first match   → {ok, value}
//   click {selector}
//   eval {js}                       a JSON-able value of an expression → {ok, value}
//   frames {ms}                     frame intervals meanwhile          → {ok, frames, max_ms, p95_ms, updates, draw_max_ms}
//   requests                        every URL the page asked for       → {ok, urls}
//   screenshot {path}
//   close
// A failed command answers {ok: false, error}.
import { chromium } from "playwright-core";
import readline from "node:readline";

const CHROMIUM = process.env.NETLAB_CHROMIUM || "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
  ],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const page = await context.newPage();
const urls = [];
page.on("request", (r) => urls.push(r.url()));
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));

async function frames(ms) {
  return page.evaluate(async (ms) => {
    const gaps = [];
    let draws = 0;
    let drawMax = 0;
    const u0 = window.netlabMap.updates;
    await new Promise((done) => {
      let last = performance.now();
      const end = last + ms;
      const tick = (t) => {
        gaps.push(t - last);
        last = t;
        if (window.netlabMap.lastDrawMs > drawMax) drawMax = window.netlabMap.lastDrawMs;
        draws += 1;
        if (t < end) requestAnimationFrame(tick); else done();
      };
      requestAnimationFrame(tick);
    });
    gaps.sort((a, b) => a - b);
    return {
      frames: gaps.length,
      max_ms: gaps[gaps.length - 1],
      p95_ms: gaps[Math.floor(gaps.length * 0.95)],
      updates: window.netlabMap.updates - u0,
      draw_max_ms: drawMax,
    };
  }, ms);
}

async function run(c) {
  switch (c.op) {
    case "open":
      await page.goto(c.url, { waitUntil: "load" });
      return {};
    case "wait":
      await page.waitForSelector(c.selector, { state: "attached", timeout: c.timeout_ms || 10000 });
      return {};
    case "gone":
      await page.waitForSelector(c.selector, { state: "detached", timeout: c.timeout_ms || 10000 });
      return {};
    case "text":
      return { text: await page.locator(c.selector).first().textContent({ timeout: 5000 }) };
    case "attr":
      return { value: await page.locator(c.selector).first().getAttribute(c.name, { timeout: 5000 }) };
    case "click":
      await page.locator(c.selector).first().click({ timeout: 5000 });
      return {};
    case "eval":
      return { value: await page.evaluate(c.js) };
    case "frames":
      return await frames(c.ms || 3000);
    case "requests":
      return { urls, console_errors: consoleErrors };
    case "screenshot":
      await page.screenshot({ path: c.path, fullPage: true });
      return {};
    case "close":
      await browser.close();
      return {};
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let answer;
  try {
    const c = JSON.parse(line);
    answer = { ok: true, ...(await run(c)) };
    if (c.op === "close") {
      process.stdout.write(JSON.stringify(answer) + "\n");
      process.exit(0);
    }
  } catch (e) {
    answer = { ok: false, error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
