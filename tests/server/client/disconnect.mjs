// Aborting a stream mid-way (the client's AbortController) frees the sequence's KV blocks.
import { client, check, model, baseURL } from './common.mjs';

async function metric(name) {
  const text = await (await fetch(`${baseURL}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return Number(line.split(' ').at(-1));
}

const controller = new AbortController();
const stream = await client.completions.create(
  { model, prompt: 'Call me Ishmael.', max_tokens: 240, stream: true, ignore_eos: true, temperature: 0 },
  { signal: controller.signal });
let chunks = 0;
try {
  for await (const chunk of stream) {
    if (++chunks === 2) controller.abort();
  }
} catch (e) {
  check(e.name === 'AbortError' || /abort/i.test(String(e)), `unexpected error ${e}`);
}
// The server frees the blocks at the next scheduler step after it sees the disconnect: wait for it,
// up to a deadline (a loaded machine may take seconds).
let used = -1;
const deadline = Date.now() + 30000;
for (;;) {
  used = await metric('slm_kv_blocks_used');
  if ((used === 0 && (await metric('slm_running_sequences')) === 0) || Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 20));
}
check(used === 0, `KV blocks still in use: ${used}`);
console.log('ok');
