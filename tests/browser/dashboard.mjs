// The dashboard in a real browser: headless Chromium from Debian (/usr/bin/chromium) driven by
// playwright-core. Run by `tests/dashboard.rs`, which starts weft with a completed instance
// (`seq`), a retried one (`retry`), one waiting for the event `answer` (`wait`), and `parent`,
// whose child `the-child` waits for `go`. Env: WEFT_URL, WEFT_TOKEN, SCREENSHOTS (a folder).
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import path from "node:path";

const url = process.env.WEFT_URL;
const token = process.env.WEFT_TOKEN;
const shots = process.env.SCREENSHOTS;
assert.ok(url && token && shots, "WEFT_URL, WEFT_TOKEN and SCREENSHOTS are set");

const step = (what) => console.log(`dashboard: ${what}`);

// The API, as an operator's script calls it (with the bearer token).
async function api(method, route, body) {
  const r = await fetch(`${url}${route}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(r.status < 300, `${method} ${route}: ${r.status} ${await r.text()}`);
  return r.status === 202 || r.status === 204 ? null : r.json();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(20_000);
  const alerts = [];
  page.on("dialog", async (d) => {
    if (d.type() === "confirm") return d.accept();
    alerts.push(d.message());
    return d.dismiss();
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // A Content-Security-Policy violation is reported on the console.
    if (m.type() === "error" && /Content Security Policy|Refused to/.test(m.text())) {
      errors.push(m.text());
    }
  });

  step("a wrong token is refused");
  await page.goto(`${url}/ui/instances`);
  assert.match(page.url(), /\/ui\/login$/, "signed out, the dashboard sends you to sign in");
  await page.fill("#token", "not-the-token");
  await page.click("button[type=submit]");
  await page.getByText("That is not the server's token.").waitFor();
  assert.match(page.url(), /\/ui\/login$/);
  await page.screenshot({ path: path.join(shots, "signin-refused.png") });
  const cookies = await page.context().cookies();
  assert.equal(cookies.length, 0, "no cookie for a wrong token");

  step("signing in");
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/ui\/instances$/);
  const [session] = await page.context().cookies();
  assert.equal(session.name, "weft_session");
  assert.ok(session.httpOnly, "the cookie is HttpOnly");
  assert.equal(session.sameSite, "Strict");
  assert.ok(!(await page.content()).includes(token), "no page holds the token");
  assert.equal(
    await page.evaluate(() => document.cookie),
    "",
    "the page's script cannot read the session",
  );
  for (const id of ["seq", "retry", "wait", "parent", "the-child"]) {
    await page.locator("table.instances a", { hasText: id }).first().waitFor();
  }
  await page.screenshot({ path: path.join(shots, "instances.png"), fullPage: true });

  step("filtering");
  await page.selectOption("select[name=runtimeStatus]", "Completed");
  await page.click("form.filters button");
  await page.waitForURL(/runtimeStatus=Completed/);
  const completed = await page.locator("table.instances tbody tr td:first-child").allTextContents();
  assert.ok(completed.includes("seq") && completed.includes("retry"), `${completed}`);
  assert.ok(!completed.includes("wait"), `a running instance is not Completed: ${completed}`);
  await page.selectOption("select[name=runtimeStatus]", "");
  await page.fill("input[name=name]", "wait-with-timeout");
  await page.click("form.filters button");
  await page.waitForURL(/name=wait-with-timeout/);
  const named = await page.locator("table.instances tbody tr td:first-child").allTextContents();
  assert.deepEqual(named, ["wait"]);

  step("an instance's timeline");
  await page.locator("table.instances a", { hasText: /^wait$/ }).click();
  await page.waitForURL(/\/ui\/instances\/wait$/);
  await page.locator("figure.timeline svg").waitFor();
  assert.equal(await page.locator("g.lane.event.open").count(), 1, "the event wait is open");
  assert.equal(await page.locator("g.lane.timer").count(), 1, "and its timeout");
  await page.goto(`${url}/ui/instances/retry`);
  assert.equal(await page.locator("g.lane.activity line.attempt-failed").count(), 1);
  assert.equal(await page.locator("g.lane.activity rect.retry-wait").count(), 1);

  step("a payload shows as text");
  const nasty = "<img src=x onerror=alert(1)>";
  await api("POST", `/instances/wait/raiseEvent/${encodeURIComponent("<b>x</b>")}`, nasty);
  await page.goto(`${url}/ui/instances/wait`);
  await page.locator("table.history td", { hasText: nasty }).first().waitFor();
  assert.equal(await page.locator("table.history img").count(), 0, "no element was made of it");

  step("raising an event from the form");
  await page.fill("form.raise input[name=event]", "answer");
  await page.fill("form.raise textarea[name=payload]", '{"code": 1234}');
  await page.click("form.raise button");
  await page.getByText("The event was raised.").waitFor();
  await page.locator("#live .status .badge", { hasText: "Completed" }).waitFor();
  assert.match(await page.locator("pre.output").textContent(), /"code": 1234/);

  step("a running instance's page follows it without a reload");
  await page.goto(`${url}/ui/instances/parent`);
  await page.locator("#live .status .badge", { hasText: "Running" }).waitFor();
  const child = page.locator("g.lane.child a", { hasText: "the-child" });
  assert.equal(await child.count(), 1, "the waiting child is linked");
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  await api("POST", "/instances/the-child/raiseEvent/go", "now");
  await page.locator("#live .status .badge", { hasText: "Completed" }).waitFor();
  assert.equal(await page.evaluate(() => window.notReloaded), true, "the page was not reloaded");
  assert.ok((await page.locator("g.lane.child").count()) >= 3, "each child is a lane");
  assert.ok((await page.locator("g.lane.child.failed").count()) >= 1, "the failing child");
  await page.screenshot({ path: path.join(shots, "instance.png"), fullPage: true });
  await child.click();
  await page.waitForURL(/\/ui\/instances\/the-child$/);

  step("a refused action shows the API's error");
  await page.fill("form.terminate input[name=reason]", "too late");
  await page.click("form.terminate button");
  await page.getByText("instance_finished").waitFor();

  step("entities and components");
  await page.click("nav a:text-is('Components')");
  await page.locator("table.components code").first().waitFor();
  await page.click("nav a:text-is('Entities')");
  await page.locator("h1", { hasText: "Entities" }).waitFor();

  step("signing out");
  await page.click("form.signout button");
  await page.waitForURL(/\/ui\/login$/);
  await page.goto(`${url}/ui/instances`);
  assert.match(page.url(), /\/ui\/login$/, "signed out");

  assert.deepEqual(alerts, [], "no script of a payload ran");
  assert.deepEqual(errors, [], "no script error and no policy violation");
  step("all checks passed");
} finally {
  await browser.close();
}
