import fs from 'node:fs';
import vm from 'node:vm';
const src = fs.readFileSync(new URL('../../shared/web/assets/glucochain.js', import.meta.url), 'utf8');
const ctx = { TextEncoder, TextDecoder, crypto: globalThis.crypto, console };
vm.createContext(ctx);
vm.runInContext(src, ctx);
const out = [];
for (const text of process.argv.slice(2)) out.push({ text, m: ctx.qrMatrix(new TextEncoder().encode(text)).map(r => r.map(x => x ? 1 : 0)) });
console.log(JSON.stringify(out));
