// Llama 3.x tool calls on the demo model under a short Llama-3-style chat template (JSON calls with
// "parameters", several separated by "; "): tool_choice "required" with parallel_tool_calls gives
// one or more calls, parsed into tool_calls, streamed or not; parallel_tool_calls false gives one;
// a conversation whose assistant turn made several calls, with their results, renders even though
// the template takes one call per assistant message.
import { client, check, model, baseURL } from './common.mjs';

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', minLength: 1, maxLength: 10 }, unit: { enum: ['celsius', 'fahrenheit'] } },
        required: ['city', 'unit'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'get_time',
      parameters: {
        type: 'object',
        properties: { zone: { enum: ['UTC', 'CET', 'PST'] } },
        required: ['zone'],
        additionalProperties: false,
      },
    },
  },
];
const ask = { role: 'user', content: 'What is the weather in Paris and Oslo, and the time in UTC?' };

function checkCalls(calls, what) {
  check(Array.isArray(calls) && calls.length >= 1, `${what}: no tool_calls`);
  const ids = new Set();
  for (const call of calls) {
    check(call.type === 'function' && typeof call.id === 'string' && call.id.length > 0, `${what}: call ${JSON.stringify(call)}`);
    ids.add(call.id);
    const tool = tools.find((t) => t.function.name === call.function.name);
    check(tool, `${what}: unknown tool '${call.function.name}'`);
    let args;
    try {
      args = JSON.parse(call.function.arguments);
    } catch (e) {
      check(false, `${what}: arguments are not JSON: ${call.function.arguments}`);
    }
    const props = tool.function.parameters.properties;
    for (const key of tool.function.parameters.required) check(key in args, `${what}: '${key}' missing in ${call.function.arguments}`);
    for (const [key, v] of Object.entries(args)) {
      check(props[key], `${what}: unexpected '${key}'`);
      if (props[key].enum) check(props[key].enum.includes(v), `${what}: ${key} = ${JSON.stringify(v)}`);
      else check(typeof v === 'string' && v.length >= 1 && [...v].length <= 10, `${what}: ${key} = ${JSON.stringify(v)}`);
    }
  }
  check(ids.size === calls.length, `${what}: call ids repeat`);
}

// Several choices sampled: each that ends is one or more valid calls, and some make several. (The
// demo model often goes on calling until the context is full; those answers end with "length".)
const many = await client.chat.completions.create({
  model, messages: [ask], tools, tool_choice: 'required', temperature: 1.0, seed: 11, n: 16,
});
let most = 0;
for (const c of many.choices) {
  if (c.finish_reason === 'length') continue;
  check(c.finish_reason === 'tool_calls', `choice ${c.index}: finish ${c.finish_reason}: ${JSON.stringify(c.message)}`);
  checkCalls(c.message.tool_calls, `choice ${c.index}`);
  check(c.message.content === null || c.message.content === '', `choice ${c.index}: content '${c.message.content}'`);
  most = Math.max(most, c.message.tool_calls.length);
}
check(most >= 2, `no choice made more than one call (most ${most})`);

// Streaming gives the same calls as the whole answer with the same seed, each with its index.
const several = many.choices.find((c) => (c.message.tool_calls?.length ?? 0) >= 2);
const same = { model, messages: [ask], tools, tool_choice: 'required', temperature: 1.0, seed: 11 + several.index };
const whole = await client.chat.completions.create(same);
const stream = await client.chat.completions.create({ ...same, stream: true });
const streamed = [];
let finish = null;
for await (const chunk of stream) {
  for (const c of chunk.choices) {
    check(!c.delta.content, `streamed content '${c.delta.content}'`);
    for (const d of c.delta.tool_calls ?? []) {
      if (!streamed[d.index]) streamed[d.index] = { id: d.id, type: d.type, function: { name: '', arguments: '' } };
      if (d.function?.name) streamed[d.index].function.name += d.function.name;
      if (d.function?.arguments) streamed[d.index].function.arguments += d.function.arguments;
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(finish === 'tool_calls', `streamed: finish ${finish}`);
checkCalls(streamed, 'streamed');
const wholeCalls = whole.choices[0].message.tool_calls;
check(streamed.length === wholeCalls.length, `streamed ${streamed.length} calls, whole ${wholeCalls.length}`);
for (let i = 0; i < streamed.length; ++i) {
  check(streamed[i].function.name === wholeCalls[i].function.name && streamed[i].function.arguments === wholeCalls[i].function.arguments,
    `call ${i}: streamed ${JSON.stringify(streamed[i].function)} vs whole ${JSON.stringify(wholeCalls[i].function)}`);
}

// parallel_tool_calls false: exactly one call, whatever the seed.
const single = await client.chat.completions.create({
  model, messages: [ask], tools, tool_choice: 'required', temperature: 1.0, seed: 11, n: 8, parallel_tool_calls: false,
});
for (const c of single.choices) {
  check(c.message.tool_calls?.length === 1, `parallel_tool_calls false, choice ${c.index}: ${JSON.stringify(c.message)}`);
  checkCalls(c.message.tool_calls, `single ${c.index}`);
}

// The conversation goes on: the assistant's turn with two calls (as the client got them back),
// then their results, in the other order (no tools: the demo model's context is short). The
// template takes one call per message: the server gives it each call followed by its own result.
const history = [
  ask,
  { role: 'assistant', content: null, tool_calls: [
    { id: 'call_paris', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' } },
    { id: 'call_oslo', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo","unit":"celsius"}' } },
  ] },
  { role: 'tool', tool_call_id: 'call_oslo', content: 'snow, -3' },
  { role: 'tool', tool_call_id: 'call_paris', content: 'sunny, 21' },
];
const next = await client.chat.completions.create({ model, messages: history, max_tokens: 8, temperature: 0 });
check(['stop', 'length', 'tool_calls'].includes(next.choices[0].finish_reason), `after results: ${next.choices[0].finish_reason}`);
const rendered = await (await fetch(`${baseURL}/tokenize`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model, messages: history, with_pieces: true }),
})).json();
const text = rendered.tokens.map((t) => t.piece).join('');
const order = ['"city": "Paris"', 'sunny, 21', '"city": "Oslo"', 'snow, -3'].map((s) => text.indexOf(s));
check(order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1])), `rendered out of order (${order}): ${text}`);
check(text.split('<|start_header_id|>ipython<|end_header_id|>').length === 3, `two ipython turns expected: ${text}`);
console.log(`ok (most calls in one answer: ${most})`);
