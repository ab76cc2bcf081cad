// Llama 3.x tool calls on the demo model under a short Llama-3-style chat template (JSON calls with
// "parameters", several separated by "; "): tool_choice "required" with parallel_tool_calls lets a
// call be followed by more, parsed into tool_calls, streamed or not; parallel_tool_calls false
// gives exactly one;
// a conversation whose assistant turn made several calls, with their results, renders even though
// the template takes one call per assistant message.
import { client, check, model, baseURL, collect_tool_calls } from './common.mjs';

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

// The ends (one past) of the top-level JSON objects in `text`.
function objectEnds(text) {
  const ends = [];
  let depth = 0, inString = false, escaped = false;
  for (let i = 0; i < text.length; ++i) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') ++depth;
    else if (c === '}' && --depth === 0) ends.push(i + 1);
  }
  return ends;
}

// Greedy, with nothing to stop it: the demo model (never trained to end a turn) goes on calling
// until the context is full, so the answer is cut inside a call and comes back as content: calls
// separated by "; ". Its tokens (logprobs) tell where the second call ends; with max_tokens there
// the same answer is exactly two calls.
const base = { model, messages: [ask], tools, tool_choice: 'required', temperature: 0 };
const full = await client.chat.completions.create({ ...base, logprobs: true });
const fullText = full.choices[0].message.content ?? '';
check(full.choices[0].finish_reason === 'length', `full: finish ${full.choices[0].finish_reason}: ${JSON.stringify(full.choices[0].message)}`);
const ends = objectEnds(fullText);
check(ends.length >= 2 && fullText.slice(ends[0], ends[0] + 3) === '; {', `full: no two calls separated by '; ': ${fullText}`);
const expected = [fullText.slice(0, ends[0]), fullText.slice(ends[0] + 2, ends[1])].map((t) => JSON.parse(t));
let k = 0;
for (let text = ''; k < full.choices[0].logprobs.content.length && text.length < ends[1]; ++k) {
  text += full.choices[0].logprobs.content[k].token;
}
const two = await client.chat.completions.create({ ...base, max_tokens: k });
const c2 = two.choices[0];
check(c2.finish_reason === 'tool_calls', `two calls: finish ${c2.finish_reason}: ${JSON.stringify(c2.message)}`);
checkCalls(c2.message.tool_calls, 'two calls');
check(c2.message.tool_calls.length === 2, `two calls: ${JSON.stringify(c2.message.tool_calls)}`);
for (let i = 0; i < 2; ++i) {
  check(c2.message.tool_calls[i].function.name === expected[i].name &&
    JSON.stringify(JSON.parse(c2.message.tool_calls[i].function.arguments)) === JSON.stringify(expected[i].parameters),
    `call ${i}: ${JSON.stringify(c2.message.tool_calls[i].function)} vs ${JSON.stringify(expected[i])}`);
}

// Streamed, the same two calls, each under its own index.
const stream = await client.chat.completions.create({ ...base, max_tokens: k, stream: true });
const { calls: streamed, finish, content } = await collect_tool_calls(stream);
check(!content, `streamed content '${content}'`);
check(finish === 'tool_calls', `streamed: finish ${finish}`);
checkCalls(streamed, 'streamed');
check(streamed.length === 2, `streamed ${streamed.length} calls`);
for (let i = 0; i < 2; ++i) {
  check(streamed[i].function.name === c2.message.tool_calls[i].function.name &&
    streamed[i].function.arguments === c2.message.tool_calls[i].function.arguments,
    `call ${i}: streamed ${JSON.stringify(streamed[i].function)} vs whole ${JSON.stringify(c2.message.tool_calls[i].function)}`);
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
console.log(`ok (two calls in ${k} tokens)`);
