// reasoning_content on a model whose chat template opens <think>: a thinking_budget ends the
// reasoning after that many tokens (</think> forced), the rest is content; streamed and whole
// answers split the same way. Then reasoning followed by a JSON answer, and by a tool call.
import { client, check, model } from './common.mjs';

const messages = [{ role: 'user', content: 'Which is larger, 9.11 or 9.9?' }];

const whole = await client.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0, thinking_budget: 8 });
const m = whole.choices[0].message;
check(typeof m.reasoning_content === 'string' && m.reasoning_content.length > 0, `reasoning: ${JSON.stringify(m)}`);
check(!m.reasoning_content.includes('</think>') && !m.content.includes('</think>') && !m.content.includes('<think>'),
  `markers leaked: ${JSON.stringify(m)}`);
check(whole.usage.completion_tokens > 8, `completion tokens ${whole.usage.completion_tokens}`);

const stream = await client.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0, thinking_budget: 8, stream: true });
let reasoning = '', content = '';
for await (const chunk of stream) {
  for (const c of chunk.choices) {
    reasoning += c.delta.reasoning_content ?? '';
    content += c.delta.content ?? '';
  }
}
check(reasoning === m.reasoning_content, `streamed reasoning '${reasoning}' vs '${m.reasoning_content}'`);
check(content === m.content, `streamed content '${content}' vs '${m.content}'`);

// Thinking, then an answer under a JSON schema.
const schema = { type: 'object', properties: { answer: { enum: ['9.11', '9.9'] } }, required: ['answer'], additionalProperties: false };
const structured = await client.chat.completions.create({
  model, messages, max_tokens: 60, temperature: 0, thinking_budget: 6,
  response_format: { type: 'json_schema', json_schema: { name: 'a', schema } },
});
const s = structured.choices[0].message;
check(s.reasoning_content && s.reasoning_content.length > 0, `structured reasoning: ${JSON.stringify(s)}`);
check(['9.11', '9.9'].includes(JSON.parse(s.content).answer), `structured content: ${s.content}`);

// Thinking, then a tool call.
const tools = [{ type: 'function', function: { name: 'compare', parameters: { type: 'object', properties: { a: { type: 'number', minimum: 0, maximum: 100 }, b: { type: 'number', minimum: 0, maximum: 100 } }, required: ['a', 'b'], additionalProperties: false } } }];
const called = await client.chat.completions.create({ model, messages, tools, tool_choice: 'required', max_tokens: 150, temperature: 0, thinking_budget: 5, parallel_tool_calls: false });
const c = called.choices[0];
check(c.finish_reason === 'tool_calls', `tool: finish ${c.finish_reason}: ${JSON.stringify(c.message)}`);
check(c.message.reasoning_content && c.message.reasoning_content.length > 0, `tool: reasoning ${JSON.stringify(c.message)}`);
const args = JSON.parse(c.message.tool_calls[0].function.arguments);
check(typeof args.a === 'number' && typeof args.b === 'number' && args.a >= 0 && args.a <= 100 && args.b >= 0 && args.b <= 100, `tool: arguments ${c.message.tool_calls[0].function.arguments}`);

// Thinking off: no reasoning_content.
const off = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0, chat_template_kwargs: { enable_thinking: false } });
check(!off.choices[0].message.reasoning_content, `thinking off: ${JSON.stringify(off.choices[0].message)}`);
console.log('ok');
