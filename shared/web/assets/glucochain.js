// GlucoChain pages' only script. It signs in with the participant's own
// Ed25519 key and signs the transactions a page prepares, both with the
// browser's WebCrypto; the key is imported from the participant's PEM file,
// kept non-extractable in this browser's IndexedDB for the session only
// (removed at sign-out, when the session has expired, and whenever the
// sign-in page shows), and never sent anywhere.
//
// Nothing is signed blind: the script decodes what the ledger prepared,
// checks it field by field against what the person asked for on the page
// (type, chain, signer, patient, every field of the body), shows it in
// words, and signs only after the person confirms. A new emergency card is
// made here too: its secret never leaves the browser but on the card.
// Everything else on the pages works without the script.
'use strict';

const enc = new TextEncoder();

function b64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64(s) {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function fromB64url(s) {
  const std = s.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(std + '==='.slice((std.length + 3) % 4));
}

// RFC 4648 base32, lower case, no padding: the form of participant ids.
function base32(bytes) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

async function sha256(parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const msg = new Uint8Array(len);
  let at = 0;
  for (const p of parts) { msg.set(p, at); at += p.length; }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', msg));
}

// The participant id registered for a public key (glucochain_types::ParticipantId).
async function participantId(publicKey) {
  const digest = await sha256([enc.encode('glucochain/v1/participant-id'), new Uint8Array([0]), publicKey]);
  return 'p' + base32(digest.slice(0, 20));
}

function keyStore(mode, use) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('glucochain', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('keys');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction('keys', mode);
      const req = use(tx.objectStore('keys'));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
    };
  });
}

const forgetKey = () => keyStore('readwrite', (s) => s.delete('me'));

function notice(text, bad) {
  const n = document.getElementById('notice');
  if (!n) return;
  n.textContent = text;
  n.classList.toggle('bad', !!bad);
  n.hidden = false;
  n.focus && n.scrollIntoView({ block: 'nearest' });
}

async function problem(response) {
  try {
    const j = await response.json();
    return j.detail || j.message || j.title || response.statusText;
  } catch (_) {
    return response.statusText || ('HTTP ' + response.status);
  }
}

// A PKCS#8 Ed25519 key as WebCrypto takes it: version 1, seed only. Key
// files written with the public key included (version 2, RFC 8410 §7) are
// rewritten from their 32-byte seed.
const PKCS8_V1_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

function pkcs8FromSeed(seed) {
  const out = new Uint8Array(48);
  out.set(PKCS8_V1_PREFIX, 0);
  out.set(seed, 16);
  return out;
}

function pkcs8v1(der) {
  const find = (pattern) => {
    for (let i = 0; i + pattern.length <= der.length; i++) {
      if (pattern.every((b, j) => der[i + j] === b)) return i;
    }
    return -1;
  };
  if (find([0x06, 0x03, 0x2b, 0x65, 0x70]) < 0) return der; // not Ed25519: let importKey say so
  const at = find([0x04, 0x22, 0x04, 0x20]);
  if (at < 0 || at + 36 > der.length) return der;
  return pkcs8FromSeed(der.slice(at + 4, at + 36));
}

async function signIn(form) {
  const file = form.querySelector('input[type=file]').files[0];
  if (!file) throw new Error('Choose your key file (the .pem your device or administrator gave you).');
  const pem = await file.text();
  const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  let exportable;
  try {
    exportable = await crypto.subtle.importKey('pkcs8', pkcs8v1(fromBase64(body)), { name: 'Ed25519' }, true, ['sign']);
  } catch (_) {
    throw new Error('That file is not an Ed25519 private key in PEM (PKCS#8) form.');
  }
  const jwk = await crypto.subtle.exportKey('jwk', exportable);
  const id = await participantId(fromB64url(jwk.x));
  const key = await crypto.subtle.importKey('jwk', jwk, { name: 'Ed25519' }, false, ['sign']);
  const chain = form.dataset.chainId;
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'Ed25519', typ: 'emr-auth+jwt', kid: id };
  const claims = {
    iss: id, aud: form.dataset.audience, iat: now, exp: now + 120,
    jti: b64url(crypto.getRandomValues(new Uint8Array(12))), chain_id: chain,
  };
  const input = b64url(enc.encode(JSON.stringify(header))) + '.' + b64url(enc.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, key, enc.encode(input));
  const r = await fetch('/ui/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: input + '.' + b64url(sig) }),
  });
  if (!r.ok) throw new Error('Sign-in refused: ' + (await problem(r)));
  const j = await r.json();
  await keyStore('readwrite', (s) => s.put({ key, id, chain, expires: j.expires_ms }, 'me'));
  location.assign(j.home);
}

// --------------------------------------------------------------- emergency card

// A new card for `patient`: 20 random bytes of secret; the card's key is
// Ed25519 from SHA-256("glucochain/v1/emergency-card-key" 0x00 secret)
// (glucochain_types::emergency). Returns its text and public key.
async function newCard(patient) {
  const secret = crypto.getRandomValues(new Uint8Array(20));
  const seed = await sha256([enc.encode('glucochain/v1/emergency-card-key'), new Uint8Array([0]), secret]);
  const key = await crypto.subtle.importKey('pkcs8', pkcs8FromSeed(seed), { name: 'Ed25519' }, true, ['sign']);
  const jwk = await crypto.subtle.exportKey('jwk', key);
  return { text: 'gce1:' + patient + ':' + base32(secret), publicKey: jwk.x };
}

// ------------------------------------------------------- checking before signing

function same(a, b) {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = canonical(v[k]);
    return o;
  }
  return v;
}

function fieldsOf(form) {
  const f = new FormData(form);
  return { get: (n) => (f.get(n) || '').toString().trim(), all: (n) => f.getAll(n).map((v) => v.toString().trim()) };
}

function refuse(why) {
  throw new Error('Not signed: the prepared transaction is not what you asked for (' + why + '). Nothing was sent.');
}

const PURPOSES = { TREAT: 'treatment', CAREMGT: 'care management', FAMRQT: 'family (caregiver)' };

// The body the form asks for, field by field, and what it says in words.
// `body` is the prepared one; only what the ledger must choose (a new
// consent's id) is taken from it, and checked for its shape.
function expectedBody(intent, form, body, card) {
  const f = fieldsOf(form);
  switch (intent) {
    case 'consent.revoke': {
      const want = { consent_id: f.get('consent_id') };
      return { want, words: [['Revoke consent', want.consent_id]] };
    }
    case 'consent.grant': {
      if (!/^c-[0-9a-f]{12}$/.test(body.consent_id || '')) refuse('consent id');
      const access = f.get('access') === 'read-write' ? ['read', 'write'] : ['read'];
      const scope = { data_classes: f.all('class'), record_types: f.all('type'), codes: [], access };
      const want = { consent_id: body.consent_id, grantee: f.get('grantee'), scope, purpose: f.get('purpose') || 'TREAT' };
      if (f.get('until')) want.valid_until = f.get('until') + 'T23:59:59Z';
      return {
        want,
        words: [
          ['Give access to', want.grantee],
          ['Access', access.includes('write') ? 'read, and add records and care plans' : 'read only'],
          ['Records', scope.data_classes.join(' and ') + ', ' + (scope.record_types.length ? scope.record_types.join(', ') : 'every kind')],
          ['Purpose', PURPOSES[want.purpose] || want.purpose],
          ['Until', f.get('until') || 'you revoke it'],
        ],
      };
    }
    case 'careplan.accept': {
      const want = { plan_id: f.get('plan_id'), version: Number(f.get('version')), proposal_tx: f.get('proposal_tx') };
      return { want, words: [['Accept care plan', want.plan_id + ' version ' + want.version], ['Proposal', want.proposal_tx]] };
    }
    case 'emergency.card': {
      // The profile itself is sealed off the chain (issue 21): the card
      // carries the current profile again, under the commitment this page
      // showed it with; the ledger sends the sealed body beside it.
      if (!card || body.card_key !== card.publicKey) refuse('the card key is not the card made here');
      const keys = ['body_commitment', 'card_key'];
      if (!same(Object.keys(body).sort(), keys)) refuse('fields of the emergency profile');
      if (!form.dataset.commitment || body.body_commitment !== form.dataset.commitment) {
        refuse('the profile is not the one shown on this page');
      }
      return {
        want: body,
        words: [
          ['New emergency card', 'the old card stops working'],
          ['Emergency profile', 'unchanged: the one shown on this page'],
        ],
      };
    }
    default:
      refuse('an action this page does not offer');
  }
  return null;
}

const TYPES = {
  'consent.revoke': 'consent.revoke', 'consent.grant': 'consent.grant',
  'careplan.accept': 'careplan.accept', 'emergency.card': 'emergency.profile.set',
};

// Decodes and checks a prepared transaction; returns what to show.
function checkPrepared(p, form, me, card) {
  const intent = fieldsOf(form).get('intent');
  const parts = (p.signing_input || '').split('.');
  if (parts.length !== 2) refuse('not a transaction');
  let header;
  let payload;
  try {
    header = JSON.parse(new TextDecoder().decode(fromB64url(parts[0])));
    payload = JSON.parse(new TextDecoder().decode(fromB64url(parts[1])));
  } catch (_) {
    refuse('it does not decode');
  }
  if (!same(header, { alg: 'Ed25519', typ: 'emr-tx+jws', kid: me.id })) refuse('the signer');
  const keys = Object.keys(payload).sort();
  if (!same(keys, ['body', 'chain_id', 'created_at', 'nonce', 'patient', 'type'])) refuse('unexpected fields');
  if (payload.type !== TYPES[intent]) refuse('the kind of transaction');
  if (!me.chain || payload.chain_id !== me.chain) refuse('the chain');
  if (payload.patient !== me.id) refuse('the patient');
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(payload.nonce)) refuse('the nonce');
  const created = Date.parse(payload.created_at);
  if (!(Math.abs(created - Date.now()) < 5 * 60 * 1000)) refuse('the time');
  const { want, words } = expectedBody(intent, form, payload.body || {}, card);
  if (!same(payload.body, want)) refuse('the details');
  return words;
}

// Shows what is about to be signed; resolves true when the person confirms.
function confirmPanel(form, words) {
  return new Promise((resolve) => {
    const panel = document.createElement('section');
    panel.className = 'confirm';
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-label', 'Check before signing');
    const h = document.createElement('h2');
    h.textContent = 'Check, then sign with your key';
    const dl = document.createElement('dl');
    for (const [k, v] of words) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = String(v);
      dl.append(dt, dd);
    }
    const actions = document.createElement('p');
    actions.className = 'actions';
    const ok = document.createElement('button');
    ok.type = 'button';
    ok.className = 'sign-confirm';
    ok.textContent = 'Sign and send';
    const no = document.createElement('button');
    no.type = 'button';
    no.className = 'sign-cancel';
    no.textContent = 'Cancel';
    actions.append(ok, no);
    panel.append(h, dl, actions);
    // Beside the form, or below the table a row's form sits in (room to read).
    (form.closest('table') || form).after(panel);
    ok.focus();
    const done = (yes) => { panel.remove(); resolve(yes); };
    ok.addEventListener('click', () => done(true));
    no.addEventListener('click', () => done(false));
  });
}

async function signAndSubmit(form) {
  const me = await keyStore('readonly', (s) => s.get('me'));
  if (!me || (me.expires && Date.now() >= me.expires)) {
    await forgetKey();
    throw new Error('Your session has ended: sign in again with your key file.');
  }
  const intent = fieldsOf(form).get('intent');
  let card = null;
  if (intent === 'emergency.card') {
    card = await newCard(form.dataset.patient);
    form.querySelector('input[name=card_key]').value = card.publicKey;
  }
  const prepared = await fetch('/ui/tx/prepare', { method: 'POST', body: new URLSearchParams(new FormData(form)) });
  if (!prepared.ok) throw new Error(await problem(prepared));
  const p = await prepared.json();
  if (me.id !== p.signer) throw new Error('This browser does not hold your key: sign out and sign in again with your key file.');
  const words = checkPrepared(p, form, me, card);
  if (!(await confirmPanel(form, words))) {
    notice('Cancelled: nothing was signed.');
    return;
  }
  notice('Signing and sending …');
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, me.key, enc.encode(p.signing_input));
  const r = await fetch('/ui/tx/submit', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jws: p.signing_input + '.' + b64url(sig) }),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.detail || j.title || ('HTTP ' + r.status));
  if (j.outcome === 'committed' && card) {
    const target = document.getElementById('card');
    target.replaceChildren(qrSvg(enc.encode(card.text)));
    const code = document.createElement('p');
    code.className = 'card-code';
    code.textContent = 'Card code (also in the QR): ' + card.text;
    const hint = document.createElement('p');
    hint.textContent = 'Print or save it now: it is not kept anywhere else.';
    target.append(code, hint);
    target.hidden = false;
    notice(j.message);
    return;
  }
  sessionStorage.setItem('gc-notice', JSON.stringify({ text: j.message, bad: j.outcome !== 'committed' }));
  location.reload();
}

// ------------------------------------------------------------------- QR code
// A QR code (ISO/IEC 18004) in byte mode at error correction level M,
// versions 1 to 10, drawn as SVG: enough for an emergency card's text.

// Per version: [data codewords per block, ...], error correction codewords per block.
const QR_M = [
  null,
  [[16], 10], [[28], 16], [[44], 26], [[32, 32], 18], [[43, 43], 24],
  [[27, 27, 27, 27], 16], [[31, 31, 31, 31], 18], [[38, 38, 39, 39], 22],
  [[36, 36, 36, 37, 37], 22], [[43, 43, 43, 43, 44], 26],
];
const QR_ALIGN = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]];

function gfMul(x, y) {
  let z = 0;
  for (let i = 7; i >= 0; i--) {
    z = ((z << 1) ^ ((z >>> 7) * 0x11d)) & 0xff;
    z ^= ((y >>> i) & 1) * x;
  }
  return z;
}

function rsDivisor(degree) {
  const result = new Array(degree).fill(0);
  result[degree - 1] = 1;
  let root = 1;
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < degree; j++) {
      result[j] = gfMul(result[j], root);
      if (j + 1 < degree) result[j] ^= result[j + 1];
    }
    root = gfMul(root, 2);
  }
  return result;
}

function rsRemainder(data, divisor) {
  const result = new Array(divisor.length).fill(0);
  for (const b of data) {
    const factor = b ^ result.shift();
    result.push(0);
    divisor.forEach((c, i) => { result[i] ^= gfMul(c, factor); });
  }
  return result;
}

// The module matrix (true = dark) for `bytes`.
function qrMatrix(bytes) {
  let version = 1;
  for (; version <= 10; version++) {
    const capacity = QR_M[version][0].reduce((a, b) => a + b, 0);
    const countBits = version < 10 ? 8 : 16;
    if (4 + countBits + 8 * bytes.length <= 8 * capacity) break;
  }
  if (version > 10) throw new Error('too much for a QR code here');
  const [blocks, ecLen] = QR_M[version];
  const capacity = blocks.reduce((a, b) => a + b, 0);
  // The bit stream: mode, count, data, terminator, padding.
  const bits = [];
  const put = (v, n) => { for (let i = n - 1; i >= 0; i--) bits.push((v >>> i) & 1); };
  put(0b0100, 4);
  put(bytes.length, version < 10 ? 8 : 16);
  for (const b of bytes) put(b, 8);
  put(0, Math.min(4, 8 * capacity - bits.length));
  while (bits.length % 8) bits.push(0);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  for (let pad = 0xec; data.length < capacity; pad ^= 0xec ^ 0x11) data.push(pad);
  // Blocks with their error correction, interleaved.
  const divisor = rsDivisor(ecLen);
  const split = [];
  let at = 0;
  for (const n of blocks) { split.push(data.slice(at, at + n)); at += n; }
  const ecc = split.map((b) => rsRemainder(b, divisor));
  const codewords = [];
  for (let i = 0; i < Math.max(...blocks); i++) for (const b of split) if (i < b.length) codewords.push(b[i]);
  for (let i = 0; i < ecLen; i++) for (const e of ecc) codewords.push(e[i]);

  const size = 4 * version + 17;
  const dark = Array.from({ length: size }, () => new Array(size).fill(false));
  const fixed = Array.from({ length: size }, () => new Array(size).fill(false));
  const set = (x, y, v) => { dark[y][x] = v; fixed[y][x] = true; };
  for (let i = 0; i < size; i++) { set(6, i, i % 2 === 0); set(i, 6, i % 2 === 0); }
  for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]]) {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const x = cx + dx;
        const y = cy + dy;
        const d = Math.max(Math.abs(dx), Math.abs(dy));
        if (x >= 0 && x < size && y >= 0 && y < size) set(x, y, d !== 2 && d !== 4);
      }
    }
  }
  const align = QR_ALIGN[version];
  for (const ax of align) {
    for (const ay of align) {
      const corner = (ax === 6 && ay === 6) || (ax === 6 && ay === align[align.length - 1]) || (ay === 6 && ax === align[align.length - 1]);
      if (corner) continue;
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) set(ax + dx, ay + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
    }
  }
  const formatBits = (mask) => {
    const d = (0b00 << 3) | mask; // level M
    let rem = d;
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    return ((d << 10) | rem) ^ 0x5412;
  };
  const drawFormat = (mask) => {
    const f = formatBits(mask);
    const bit = (i) => ((f >>> i) & 1) === 1;
    for (let i = 0; i <= 5; i++) set(8, i, bit(i));
    set(8, 7, bit(6));
    set(8, 8, bit(7));
    set(7, 8, bit(8));
    for (let i = 9; i < 15; i++) set(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) set(size - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) set(8, size - 15 + i, bit(i));
    set(8, size - 8, true);
  };
  drawFormat(0);
  if (version >= 7) {
    let rem = version;
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
    const v = (version << 12) | rem;
    for (let i = 0; i < 18; i++) {
      const b = ((v >>> i) & 1) === 1;
      const a = size - 11 + (i % 3);
      const c = Math.floor(i / 3);
      set(a, c, b);
      set(c, a, b);
    }
  }
  // The codewords, two columns at a time in a zigzag from the bottom right.
  let i = 0;
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let vert = 0; vert < size; vert++) {
      for (let j = 0; j < 2; j++) {
        const x = right - j;
        const upward = ((right + 1) & 2) === 0;
        const y = upward ? size - 1 - vert : vert;
        if (!fixed[y][x] && i < codewords.length * 8) {
          dark[y][x] = ((codewords[i >>> 3] >>> (7 - (i & 7))) & 1) === 1;
          i++;
        }
      }
    }
  }
  const masks = [
    (x, y) => (x + y) % 2 === 0, (x, y) => y % 2 === 0, (x) => x % 3 === 0, (x, y) => (x + y) % 3 === 0,
    (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0, (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
    (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0, (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
  ];
  const applyMask = (m) => {
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (!fixed[y][x] && masks[m](x, y)) dark[y][x] = !dark[y][x];
  };
  // The mask with the least penalty (the standard's four rules).
  const penalty = () => {
    let p = 0;
    const lines = [];
    for (let y = 0; y < size; y++) lines.push(dark[y]);
    for (let x = 0; x < size; x++) lines.push(dark.map((row) => row[x]));
    for (const line of lines) {
      let run = 1;
      for (let k = 1; k <= size; k++) {
        if (k < size && line[k] === line[k - 1]) { run++; continue; }
        if (run >= 5) p += run - 2;
        run = 1;
      }
      const s = line.map((d) => (d ? '1' : '0')).join('');
      for (const pat of ['10111010000', '00001011101']) for (let k = s.indexOf(pat); k >= 0; k = s.indexOf(pat, k + 1)) p += 40;
    }
    for (let y = 0; y + 1 < size; y++) {
      for (let x = 0; x + 1 < size; x++) {
        const c = dark[y][x];
        if (dark[y][x + 1] === c && dark[y + 1][x] === c && dark[y + 1][x + 1] === c) p += 3;
      }
    }
    const total = dark.flat().filter(Boolean).length;
    p += 10 * Math.floor(Math.abs(total * 20 - size * size * 10) / (size * size));
    return p;
  };
  let best = 0;
  let bestPenalty = Infinity;
  for (let m = 0; m < 8; m++) {
    applyMask(m);
    drawFormat(m);
    const pen = penalty();
    if (pen < bestPenalty) { best = m; bestPenalty = pen; }
    applyMask(m);
  }
  applyMask(best);
  drawFormat(best);
  return dark;
}

// The QR code of `bytes` as an SVG element (four modules of quiet zone).
function qrSvg(bytes) {
  const m = qrMatrix(bytes);
  const n = m.length + 8;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${n} ${n}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code of the emergency card');
  svg.setAttribute('shape-rendering', 'crispEdges');
  const bg = document.createElementNS(ns, 'rect');
  bg.setAttribute('width', String(n));
  bg.setAttribute('height', String(n));
  bg.setAttribute('fill', '#ffffff');
  const path = document.createElementNS(ns, 'path');
  let d = '';
  m.forEach((row, y) => row.forEach((on, x) => { if (on) d += `M${x + 4} ${y + 4}h1v1h-1z`; }));
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000000');
  svg.append(bg, path);
  return svg;
}

// ------------------------------------------------------------------- wiring

async function guarded(event, action) {
  event.preventDefault();
  const form = event.target;
  const buttons = form.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await action(form);
  } catch (e) {
    notice(e.message || String(e), true);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

if (typeof document !== 'undefined') {
  document.addEventListener('DOMContentLoaded', () => {
    const saved = sessionStorage.getItem('gc-notice');
    if (saved) {
      sessionStorage.removeItem('gc-notice');
      const n = JSON.parse(saved);
      notice(n.text, n.bad);
    }
    // The sign-in page shows when there is no session (never started,
    // signed out, expired): no key stays behind in this browser.
    const signin = document.querySelectorAll('form.signin');
    if (signin.length) forgetKey().catch(() => {});
    for (const f of signin) f.addEventListener('submit', (e) => guarded(e, signIn));
    for (const f of document.querySelectorAll('form.signed')) f.addEventListener('submit', (e) => guarded(e, signAndSubmit));
    for (const f of document.querySelectorAll('form.signout')) {
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        try { await forgetKey(); } finally { f.submit(); }
      });
    }
    for (const b of document.querySelectorAll('button.print')) b.addEventListener('click', () => window.print());
  });
}
