// tool_choice enforced by the grammar: "required" and a named function make the answer a tool call
// (Hermes format on a ChatML model) whose arguments follow the tool's parameters, parsed into
// tool_calls, streamed or not; "none" leaves the tools out; "auto" answers either way.
import { client, check, model, collect_tool_calls } from './common.mjs';

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string', minLength: 1, maxLength: 10 },
          unit: { enum: ['celsius', 'fahrenheit'] },
          days: { type: 'integer', minimum: 1, maximum: 7 },
        },
        required: ['city', 'unit'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'book_table',
      parameters: {
        type: 'object',
        properties: { people: { type: 'integer', minimum: 1, maximum: 12 }, time: { type: 'string', pattern: '^[0-2][0-9]:[0-5][0-9]$' } },
        required: ['people', 'time'],
        additionalProperties: false,
      },
    },
  },
];
const messages = [{ role: 'user', content: 'What is the weather in Paris, and book a table for two at eight?' }];

// The subset of JSON Schema the tools above use.
function valid(schema, value, path = '$') {
  if (schema.enum) return schema.enum.includes(value) || `${path}: ${JSON.stringify(value)} not in enum`;
  if (schema.type === 'object') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${path}: not an object`;
    for (const key of schema.required ?? []) if (!(key in value)) return `${path}: '${key}' missing`;
    for (const [key, v] of Object.entries(value)) {
      const sub = schema.properties?.[key];
      if (!sub) return `${path}: unexpected '${key}'`;
      const r = valid(sub, v, `${path}.${key}`);
      if (r !== true) return r;
    }
    return true;
  }
  if (schema.type === 'integer') {
    if (!Number.isInteger(value)) return `${path}: not an integer`;
    if (value < schema.minimum || value > schema.maximum) return `${path}: ${value} out of range`;
    return true;
  }
  if (schema.type === 'string') {
    if (typeof value !== 'string') return `${path}: not a string`;
    const n = [...value].length;
    if (n < (schema.minLength ?? 0) || n > (schema.maxLength ?? Infinity)) return `${path}: length ${n}`;
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) return `${path}: '${value}' does not match ${schema.pattern}`;
    return true;
  }
  return `${path}: unexpected schema`;
}

function checkCalls(calls, what, only) {
  check(Array.isArray(calls) && calls.length >= 1, `${what}: no tool_calls`);
  for (const call of calls) {
    check(call.type === 'function' && typeof call.id === 'string' && call.id.length > 0, `${what}: call ${JSON.stringify(call)}`);
    const tool = tools.find((t) => t.function.name === call.function.name);
    check(tool, `${what}: unknown tool '${call.function.name}'`);
    if (only) check(call.function.name === only, `${what}: called ${call.function.name}, not ${only}`);
    let args;
    try {
      args = JSON.parse(call.function.arguments);
    } catch (e) {
      check(false, `${what}: arguments are not JSON: ${call.function.arguments}`);
    }
    const r = valid(tool.function.parameters, args);
    check(r === true, `${what}: ${r} in ${call.function.arguments}`);
  }
}

const names = new Set();
for (const seed of [1, 2, 3]) {
  const r = await client.chat.completions.create({ model, messages, tools, tool_choice: 'required', max_tokens: 150, seed });
  const c = r.choices[0];
  check(c.finish_reason === 'tool_calls', `seed ${seed}: finish ${c.finish_reason}: ${JSON.stringify(c.message)}`);
  checkCalls(c.message.tool_calls, `seed ${seed}`);
  check(c.message.content === null || c.message.content === '', `seed ${seed}: content '${c.message.content}'`);
  for (const call of c.message.tool_calls) names.add(call.function.name);
}

// A named function, one call.
const named = await client.chat.completions.create({
  model, messages, tools, max_tokens: 150, temperature: 0, parallel_tool_calls: false,
  tool_choice: { type: 'function', function: { name: 'book_table' } },
});
check(named.choices[0].finish_reason === 'tool_calls', `named: finish ${named.choices[0].finish_reason}`);
check(named.choices[0].message.tool_calls.length === 1, `named: ${named.choices[0].message.tool_calls.length} calls`);
checkCalls(named.choices[0].message.tool_calls, 'named', 'book_table');

// Streaming: the calls arrive as delta.tool_calls; the same as the answer in one piece.
const stream = await client.chat.completions.create({
  model, messages, tools, max_tokens: 150, temperature: 0, parallel_tool_calls: false,
  tool_choice: { type: 'function', function: { name: 'get_weather' } }, stream: true,
});
const { calls: streamed, finish } = await collect_tool_calls(stream);
check(finish === 'tool_calls', `streamed: finish ${finish}`);
checkCalls(streamed, 'streamed', 'get_weather');
const whole = await client.chat.completions.create({
  model, messages, tools, max_tokens: 150, temperature: 0, parallel_tool_calls: false,
  tool_choice: { type: 'function', function: { name: 'get_weather' } },
});
check(whole.choices[0].message.tool_calls[0].function.arguments === streamed[0].function.arguments,
  `streamed '${streamed[0].function.arguments}' vs whole '${whole.choices[0].message.tool_calls[0].function.arguments}'`);

// "none": no calls, text.
const none = await client.chat.completions.create({ model, messages, tools, tool_choice: 'none', max_tokens: 12, temperature: 0 });
check(!none.choices[0].message.tool_calls, `none: ${JSON.stringify(none.choices[0].message)}`);
check(typeof none.choices[0].message.content === 'string', 'none: content');
// "auto": whatever the model writes, a valid answer.
const auto = await client.chat.completions.create({ model, messages, tools, tool_choice: 'auto', max_tokens: 12, temperature: 0 });
check(['stop', 'length', 'tool_calls'].includes(auto.choices[0].finish_reason), `auto: ${auto.choices[0].finish_reason}`);
console.log(`ok (tools called: ${[...names].join(', ')})`);
