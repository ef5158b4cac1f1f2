// Drives Debian's headless Chromium through GlucoChain's web pages for the
// end-to-end tests (tests/e2e/tests/web.rs runs it). Usage:
//   node glucochain.mjs <scenario> '<json arguments>'
// Each scenario prints one JSON object with what it saw; any failed
// expectation throws, and the process exits non-zero with the reason.
// Every page visited is checked for WCAG 2.1 AA text contrast, and a
// screenshot of it is written to args.shots.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const [scenario, raw] = process.argv.slice(2);
const args = JSON.parse(raw || '{}');
fs.mkdirSync(args.shots, { recursive: true });

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

// Every element with its own text: its colour against the first opaque
// background behind it must reach 4.5:1 (3:1 for large text).
async function contrastFailures(page) {
  return page.evaluate(() => {
    const parse = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c;
      }
      return [255, 255, 255];
    };
    const bad = [];
    for (const el of document.querySelectorAll('body *')) {
      if (el.closest('svg') || el.closest('[hidden]') || !el.checkVisibility?.()) continue;
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const s = getComputedStyle(el);
      const fg = parse(s.color);
      const bg = background(el);
      const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(s.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) bad.push(`${el.tagName} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}:1`);
    }
    return bad;
  });
}

async function check(page, shot) {
  const bad = await contrastFailures(page);
  expect(bad.length === 0, `WCAG AA contrast on ${page.url()}, failing: ${bad.join('; ')}`);
  const csp = await page.evaluate(() => document.querySelector('script[src]')?.getAttribute('src'));
  expect(csp === '/static/glucochain.js', 'the page to load only our own script');
  if (shot) await page.screenshot({ path: path.join(args.shots, shot), fullPage: true });
}

async function signIn(page) {
  await page.goto(`${args.base}/ui/`);
  await page.setInputFiles('#key', args.key);
  await page.click('form.signin button[type=submit]');
  const done = page.waitForURL((u) => !u.pathname.endsWith('/ui/')).then(() => null);
  const failed = page.locator('#notice.bad').waitFor().then(() => page.locator('#notice').textContent());
  const error = await Promise.race([done, failed]);
  expect(!error, `to be signed in, got: ${error}`);
}

// The check before signing: what the page decoded from the prepared
// transaction, shown in words; then the person confirms.
async function confirmSigning(page) {
  const panel = page.locator('.confirm');
  await panel.waitFor();
  const words = await panel.locator('dl').evaluate((dl) => [...dl.children].map((e) => e.textContent).join(' '));
  await page.click('button.sign-confirm');
  return words;
}

// The outcome a page reports after a signed transaction: done, refused or pending.
async function notice(page) {
  await page.waitForFunction(() => {
    const n = document.getElementById('notice');
    return n && !n.hidden && (n.classList.contains('bad') || /^(Done|Sent)/.test(n.textContent));
  }, null, { timeout: 40000 });
  await page.waitForLoadState('load');
  return (await page.locator('#notice').textContent()).trim();
}

const scenarios = {
  // The alert page from an email link, on a phone: chart, who knows, Acknowledge by keyboard.
  async alert(page) {
    await page.setViewportSize({ width: 390, height: 844 });
    const r = await page.goto(args.url);
    expect(r.status() === 200, `the alert page to open (got ${r.status()})`);
    const headers = r.headers();
    expect(/script-src 'self'/.test(headers['content-security-policy'] || ''), 'a content security policy');
    const title = (await page.locator('h1').textContent()).trim();
    expect(await page.locator('svg.trace polyline.readings').count() === 1, 'the glucose chart');
    const chart = await page.locator('svg.trace desc').textContent();
    expect(await page.locator('#ack-state[data-state=open]').count() === 1, 'the alert to be open');
    const before = await page.locator('#deliveries tbody tr').allTextContents();
    // Issue 20: the page offers a snooze (for this contact only) and lists those in force.
    const snoozeOptions = await page.locator('#snooze-minutes option').allTextContents();
    const snoozes = await page.locator('#snoozes').getAttribute('data-count');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width <= 390, `the page to fit a phone screen (scroll width ${width})`);
    await check(page, 'alert.png');
    // Keyboard only: tab to the button, press Enter.
    let focused = '';
    for (let i = 0; i < 30 && focused !== 'Acknowledge'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement?.textContent?.trim() || '');
    }
    expect(focused === 'Acknowledge', 'the Acknowledge button to be reachable with Tab');
    await Promise.all([page.waitForURL(/acknowledged=1/), page.keyboard.press('Enter')]);
    await page.locator('#ack-state[data-state=acknowledged]').waitFor();
    const state = (await page.locator('#ack-state').textContent()).replace(/\s+/g, ' ').trim();
    const after = await page.locator('#deliveries tbody tr').allTextContents();
    expect(await page.locator('button', { hasText: 'Acknowledge' }).count() === 0, 'no button once acknowledged');
    await check(page, 'alert-acknowledged.png');
    return { title, chart, state, deliveries_before: before, deliveries_after: after, snooze_options: snoozeOptions, snoozes };
  },

  // The patient accepts the care plan their clinician proposed.
  async 'accept-plan'(page) {
    await signIn(page);
    await page.goto(`${args.base}/ui/patients/${args.patient}/careplan`);
    // Every contact and channel is on the page before accepting.
    const proposal = (await page.locator('.proposal').first().textContent()).replace(/\s+/g, ' ');
    await page.click('button:has-text("Accept this plan")');
    const confirmed = await confirmSigning(page);
    const text = await notice(page);
    expect(text.startsWith('Done:'), `the plan to be accepted, got: ${text}`);
    await page.waitForLoadState('load');
    await check(page, 'careplan.png');
    return { notice: text, confirmed, proposal, page: (await page.locator('main').textContent()).replace(/\s+/g, ' ') };
  },

  // The patient revokes a consent.
  async revoke(page) {
    await signIn(page);
    expect(page.url().endsWith(`/ui/patients/${args.patient}/records`), 'the patient to land on their records');
    await check(page, 'records.png');
    await page.goto(`${args.base}/ui/patients/${args.patient}/consents`);
    await check(page, 'consents-before.png');
    await page.click(`button[aria-label^="Revoke consent ${args.consent} "]`);
    const confirmed = await confirmSigning(page);
    const text = await notice(page);
    const row = (await page.locator('tr', { hasText: args.consent }).textContent()).replace(/\s+/g, ' ');
    await check(page, 'consents.png');
    return { notice: text, confirmed, row };
  },

  // A prepare answer altered on its way (a compromised server or proxy):
  // the page refuses each one, and nothing is ever signed or sent.
  async tampered(page) {
    await signIn(page);
    let submitted = 0;
    page.on('request', (r) => { if (r.url().endsWith('/ui/tx/submit')) submitted++; });
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const cases = {
      'another consent': (h, p) => { p.body.consent_id = 'someone-elses'; },
      'another chain': (h, p) => { p.chain_id = 'another-chain'; },
      'another patient': (h, p) => { p.patient = 'p' + 'a'.repeat(32); },
      'a grant instead of a revoke': (h, p) => {
        p.type = 'consent.grant';
        p.body = { consent_id: 'c-000000000000', grantee: 'p' + 'b'.repeat(32), purpose: 'TREAT',
          scope: { data_classes: ['private'], record_types: [], codes: [], access: ['read', 'write'] } };
      },
      'an extra field': (h, p) => { p.body.reason = 'revoked by the patient'; },
      'another signer': (h) => { h.kid = 'p' + 'c'.repeat(32); },
    };
    const refused = {};
    for (const [what, mutate] of Object.entries(cases)) {
      await page.route('**/ui/tx/prepare', async (route) => {
        const resp = await route.fetch();
        const j = await resp.json();
        const [h, p] = j.signing_input.split('.');
        const header = JSON.parse(Buffer.from(h, 'base64url').toString());
        const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
        mutate(header, payload);
        j.signing_input = b64(header) + '.' + b64(payload);
        j.summary = `revoke consent ${args.consent}`; // the server's words say what the person expects
        await route.fulfill({ response: resp, json: j });
      });
      await page.goto(`${args.base}/ui/patients/${args.patient}/consents`);
      await page.click(`button[aria-label^="Revoke consent ${args.consent} "]`);
      await page.locator('#notice.bad').waitFor();
      refused[what] = (await page.locator('#notice').textContent()).trim();
      expect(await page.locator('.confirm').count() === 0, `no signing offered for ${what}`);
      await page.unroute('**/ui/tx/prepare');
    }
    expect(submitted === 0, `nothing to be submitted, ${submitted} were`);
    // Untampered, the same button works: the person is asked, and may cancel.
    await page.goto(`${args.base}/ui/patients/${args.patient}/consents`);
    await page.click(`button[aria-label^="Revoke consent ${args.consent} "]`);
    await page.locator('.confirm').waitFor();
    const shown = await page.locator('.confirm dl').evaluate((dl) => [...dl.children].map((e) => e.textContent).join(' '));
    await check(page, 'sign-confirm.png');
    await page.click('button.sign-cancel');
    const cancelled = (await page.locator('#notice').textContent()).trim();
    expect(submitted === 0, 'nothing submitted after a cancel');
    return { refused, shown, cancelled };
  },

  // The patient grants a consent: the contract rules' answer is shown.
  async grant(page) {
    await signIn(page);
    await page.goto(`${args.base}/ui/patients/${args.patient}/consents`);
    await page.fill('#grantee', args.grantee);
    await page.check('input[name=type][value=observation]');
    await page.click('button:has-text("Grant")');
    const confirmed = await confirmSigning(page);
    const text = await notice(page);
    const bad = await page.locator('#notice.bad').count() === 1;
    return { notice: text, bad, confirmed };
  },

  // A participant opens a patient's records page and gets what the rules allow.
  async 'read-records'(page) {
    await signIn(page);
    const r = await page.goto(`${args.base}/ui/patients/${args.patient}/records`);
    const text = (await page.locator('main').textContent()).replace(/\s+/g, ' ').trim();
    await check(page, args.shot);
    return { status: r.status(), text };
  },

  // The patient's access log.
  async 'access-log'(page) {
    await signIn(page);
    await page.goto(`${args.base}/ui/patients/${args.patient}/access-log`);
    const rows = await page.locator('#access-log tbody tr').evaluateAll((trs) =>
      trs.map((tr) => ({ reader: tr.dataset.reader, outcome: tr.dataset.outcome, text: tr.textContent.replace(/\s+/g, ' ').trim() })));
    await check(page, 'access-log.png');
    return { rows };
  },

  // The patient issues a new emergency card: the QR code appears once committed.
  async emergency(page) {
    await signIn(page);
    await page.goto(`${args.base}/ui/patients/${args.patient}/emergency`);
    const profile = (await page.locator('main table').first().textContent()).replace(/\s+/g, ' ');
    await page.click('button:has-text("Issue a new card")');
    const confirmed = await confirmSigning(page);
    await page.locator('#card svg').waitFor({ timeout: 30000 });
    const code = (await page.locator('#card p.card-code').textContent()).trim();
    await check(page, 'emergency.png');
    const qr = path.join(args.shots, 'card-qr.png');
    await page.locator('#card svg').screenshot({ path: qr });
    return { profile, confirmed, notice: await notice(page), code, qr };
  },

  // The patient's list of break-glass accesses, with the clinicians' words.
  async 'break-glass-list'(page) {
    await signIn(page);
    await page.goto(`${args.base}/ui/patients/${args.patient}/emergency`);
    const items = await page.locator('#break-glass li').evaluateAll((lis) => lis.map((li) => li.textContent.replace(/\s+/g, ' ').trim()));
    return { items };
  },

  // The clinician's AGP report: every figure as the page gives it, and a PDF.
  async agp(page) {
    await signIn(page);
    expect(page.url().endsWith('/ui/patients'), 'the clinician to land on their patients');
    expect(await page.locator(`a[href="/ui/patients/${args.patient}/agp"]`).count() === 1, 'the patient in the list');
    await check(page, 'patients.png');
    const r = await page.goto(`${args.base}/ui/patients/${args.patient}/agp?from=${args.from}&to=${args.to}&offset=0`);
    expect(r.status() === 200, `the report (got ${r.status()})`);
    const figures = await page.locator('[data-figure]').evaluateAll((els) =>
      Object.fromEntries(els.map((e) => [e.dataset.figure, Number(e.dataset.value)])));
    const bands = await page.locator('#time-in-ranges tr[data-band]').evaluateAll((els) =>
      Object.fromEntries(els.map((e) => [e.dataset.band, Number(e.dataset.value)])));
    const readings = Number(await page.locator('#provenance').getAttribute('data-readings'));
    const modal = await page.locator('#modal-day tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    expect(await page.locator('svg.agp polyline.median').count() === 1, 'the modal-day chart');
    expect(await page.locator('.days figure').count() > 0, 'daily profiles');
    await check(page, 'agp.png');
    const href = await page.locator('#provenance a[download]').getAttribute('href');
    const csv = await (await page.request.get(new URL(href, page.url()).toString())).text();
    const pdf = path.join(args.shots, 'agp.pdf');
    await page.pdf({ path: pdf, format: 'A4', printBackground: true });
    return { figures, bands, readings, modal, csv, pdf_bytes: fs.statSync(pdf).size };
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(30000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const out = await run(page);
  // A 403 page logs the refused load; anything else in the console is a fault.
  const unexpected = errors.filter((e) => !/status of 403/.test(e));
  expect(unexpected.length === 0, `no script or CSP errors, got: ${unexpected.join(' | ')}`);
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
