// GlucoChain pages' only script. It signs in with the participant's own
// Ed25519 key and signs the transactions a page prepares, both with the
// browser's WebCrypto; the key is imported from the participant's PEM file,
// kept non-extractable in this browser's IndexedDB until sign-out, and never
// sent anywhere. Everything else on the pages works without it.
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

// The participant id registered for a public key (glucochain_types::ParticipantId).
async function participantId(publicKey) {
  const tag = enc.encode('glucochain/v1/participant-id');
  const msg = new Uint8Array(tag.length + 1 + publicKey.length);
  msg.set(tag, 0);
  msg.set(publicKey, tag.length + 1);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', msg));
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
  const prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
  const out = new Uint8Array(48);
  out.set(prefix, 0);
  out.set(der.slice(at + 4, at + 36), 16);
  return out;
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
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'Ed25519', typ: 'emr-auth+jwt', kid: id };
  const claims = { iss: id, aud: form.dataset.audience, iat: now, exp: now + 120, jti: b64url(crypto.getRandomValues(new Uint8Array(12))) };
  const input = b64url(enc.encode(JSON.stringify(header))) + '.' + b64url(enc.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, key, enc.encode(input));
  const r = await fetch('/ui/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: input + '.' + b64url(sig) }),
  });
  if (!r.ok) throw new Error('Sign-in refused: ' + (await problem(r)));
  const j = await r.json();
  await keyStore('readwrite', (s) => s.put({ key, id }, 'me'));
  location.assign(j.home);
}

async function signAndSubmit(form) {
  const prepared = await fetch('/ui/tx/prepare', { method: 'POST', body: new URLSearchParams(new FormData(form)) });
  if (!prepared.ok) throw new Error(await problem(prepared));
  const p = await prepared.json();
  const me = await keyStore('readonly', (s) => s.get('me'));
  if (!me || me.id !== p.signer) throw new Error('This browser does not hold your key: sign out and sign in again with your key file.');
  notice('Signing and sending: ' + p.summary);
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, me.key, enc.encode(p.signing_input));
  const r = await fetch('/ui/tx/submit', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jws: p.signing_input + '.' + b64url(sig) }),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.detail || j.title || ('HTTP ' + r.status));
  if (j.outcome === 'committed' && p.card) {
    const target = document.getElementById('card');
    const svg = new DOMParser().parseFromString(p.card.qr_svg, 'image/svg+xml').documentElement;
    target.replaceChildren(svg);
    const code = document.createElement('p');
    code.textContent = 'Card code (also in the QR): ' + p.card.token;
    target.append(code);
    target.hidden = false;
    notice(j.message);
    return;
  }
  sessionStorage.setItem('gc-notice', JSON.stringify({ text: j.message, bad: j.outcome !== 'committed' }));
  location.reload();
}

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

document.addEventListener('DOMContentLoaded', () => {
  const saved = sessionStorage.getItem('gc-notice');
  if (saved) {
    sessionStorage.removeItem('gc-notice');
    const n = JSON.parse(saved);
    notice(n.text, n.bad);
  }
  for (const f of document.querySelectorAll('form.signin')) f.addEventListener('submit', (e) => guarded(e, signIn));
  for (const f of document.querySelectorAll('form.signed')) f.addEventListener('submit', (e) => guarded(e, signAndSubmit));
  for (const f of document.querySelectorAll('form.signout')) {
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      try { await keyStore('readwrite', (s) => s.delete('me')); } finally { f.submit(); }
    });
  }
  for (const b of document.querySelectorAll('button.print')) b.addEventListener('click', () => window.print());
});
