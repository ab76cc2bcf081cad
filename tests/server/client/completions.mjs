// Legacy completions through the official client: plain and streamed agree, n=2, logprobs, and
// echo + logprobs scoring a continuation gives the logprob generation reported.
import { client, check, model } from './common.mjs';

const prompt = 'It is a truth universally acknowledged';
const full = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0 });
check(full.object === 'text_completion', `object ${full.object}`);
const text = full.choices[0].text;
check(text.length > 0, 'empty completion');

const stream = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0, stream: true });
let streamed = '';
for await (const chunk of stream) for (const c of chunk.choices) streamed += c.text;
check(streamed === text, `streamed '${streamed}' differs from '${text}'`);

const two = await client.completions.create({ model, prompt: ['Call me Ishmael.', prompt], max_tokens: 4, n: 2, temperature: 0 });
check(two.choices.length === 4, `2 prompts x n=2 gave ${two.choices.length}`);
check(two.choices[2].text === text.slice(0, two.choices[2].text.length), 'choice 2 answers the second prompt');
check(two.choices[0].text === two.choices[1].text, 'greedy choices agree');

const lp = await client.completions.create({ model, prompt, max_tokens: 1, temperature: 0, logprobs: 2 });
const l = lp.choices[0].logprobs;
check(l.tokens.length === 1 && l.token_logprobs.length === 1, `logprobs of one token: ${JSON.stringify(l)}`);
check(Object.keys(l.top_logprobs[0]).length === 2, 'two alternatives');
check(l.token_logprobs[0] <= 0, 'logprob <= 0');
const first = lp.choices[0].text;

// Scoring: the prompt followed by the generated token, echoed with logprobs and nothing generated.
const scored = await client.completions.create({ model, prompt: prompt + first, max_tokens: 0, echo: true, logprobs: 1 });
const s = scored.choices[0];
check(s.text === prompt + first, `echo text '${s.text}'`);
check(s.logprobs.token_logprobs[0] === null, 'the first prompt token has no logprob');
check(s.logprobs.token_logprobs.slice(1).every((x) => typeof x === 'number' && x <= 0), 'prompt logprobs');
const last = s.logprobs.token_logprobs.at(-1);
check(s.logprobs.tokens.at(-1) === l.tokens[0], `last echoed token '${s.logprobs.tokens.at(-1)}' vs '${l.tokens[0]}'`);
check(Math.abs(last - l.token_logprobs[0]) < 1e-3, `scored ${last} vs generated ${l.token_logprobs[0]}`);
check(scored.usage.completion_tokens === 0, 'nothing generated');

// Echo with 3 alternatives: every prompt position but the first lists the 3 most likely tokens
// there, plus the prompt's own token when it is not among them, with the logprob it was given.
const alt = await client.completions.create({ model, prompt: prompt + first, max_tokens: 0, echo: true, logprobs: 3 });
const a = alt.choices[0].logprobs;
check(a.top_logprobs[0] === null, 'no alternatives for the first prompt token');
for (let k = 1; k < a.tokens.length; ++k) {
  const top = a.top_logprobs[k];
  const n = Object.keys(top).length;
  check(n === 3 || n === 4, `position ${k}: ${n} alternatives ${JSON.stringify(top)}`);
  check(Math.abs(top[a.tokens[k]] - a.token_logprobs[k]) < 1e-6, `position ${k}: own token ${JSON.stringify(top)}`);
  const best = Math.max(...Object.values(top));
  check(best >= a.token_logprobs[k], `position ${k}: best ${best} below the prompt token's ${a.token_logprobs[k]}`);
  check(Object.values(top).every((x) => x <= 0), `position ${k}: logprobs <= 0`);
}
// The last echoed token is the greedy continuation: the most likely there.
const lastTop = a.top_logprobs.at(-1);
check(Math.abs(Math.max(...Object.values(lastTop)) - a.token_logprobs.at(-1)) < 1e-6, `greedy token is the best: ${JSON.stringify(lastTop)}`);
check(Object.keys(lastTop).length === 3, 'the greedy token is one of the 3');
console.log('ok');
