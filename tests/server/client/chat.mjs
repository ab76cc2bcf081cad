// Chat completions through the official client: plain, streamed (greedy: the same text), n=2,
// logprobs, tools accepted.
import { client, check, model } from './common.mjs';

const messages = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about the sea.' }];

const full = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
check(full.object === 'chat.completion', `object ${full.object}`);
check(full.model === model, `model ${full.model}`);
const content = full.choices[0].message.content;
check(full.choices[0].message.role === 'assistant', 'role');
check(typeof content === 'string' && content.length > 0, `content '${content}'`);
check(full.usage.completion_tokens > 0 && full.usage.completion_tokens <= 16, `completion_tokens ${full.usage.completion_tokens}`);
check(full.usage.total_tokens === full.usage.prompt_tokens + full.usage.completion_tokens, 'total_tokens');
check(['stop', 'length'].includes(full.choices[0].finish_reason), `finish_reason ${full.choices[0].finish_reason}`);

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let text = '';
let usage = null;
let finish = null;
let chunks = 0;
for await (const chunk of stream) {
  ++chunks;
  check(chunk.object === 'chat.completion.chunk', `chunk object ${chunk.object}`);
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    text += c.delta.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(chunks > 2, `only ${chunks} chunks`);
check(text === content, `streamed '${text}' differs from '${content}'`);
check(finish === full.choices[0].finish_reason, `streamed finish ${finish}`);
check(usage && usage.completion_tokens === full.usage.completion_tokens, 'streamed usage');

const two = await client.chat.completions.create({ model, messages, max_tokens: 8, n: 2, temperature: 1.0, seed: 5 });
check(two.choices.length === 2, `n=2 gave ${two.choices.length} choices`);
check(two.choices[0].index === 0 && two.choices[1].index === 1, 'choice indices');
check(two.choices.every((c) => typeof c.message.content === 'string'), 'n=2 contents');
const again = await client.chat.completions.create({ model, messages, max_tokens: 8, n: 2, temperature: 1.0, seed: 5 });
check(again.choices[0].message.content === two.choices[0].message.content, 'the same seed gives the same text');

const lp = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
const entries = lp.choices[0].logprobs.content;
check(entries.length >= 1 && entries.length <= lp.usage.completion_tokens, `logprob entries ${entries.length}`);
check(entries.map((e) => e.token).join('') === lp.choices[0].message.content, 'logprob tokens spell the content');
for (const e of entries) {
  check(e.logprob <= 0, `logprob ${e.logprob}`);
  check(e.top_logprobs.length === 3, `top_logprobs ${e.top_logprobs.length}`);
  check(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob && e.top_logprobs[1].logprob >= e.top_logprobs[2].logprob, 'sorted');
  check(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4, 'greedy picks the most likely token');
  check(Array.isArray(e.bytes), 'bytes');
}

const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
const withTools = await client.chat.completions.create({ model, messages, max_tokens: 4, temperature: 0, tools });
check(['stop', 'length', 'tool_calls'].includes(withTools.choices[0].finish_reason), 'tools accepted');
console.log('ok');
