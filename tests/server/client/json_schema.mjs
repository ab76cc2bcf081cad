// response_format json_schema: the answer is JSON that follows the schema, streamed or not;
// unsupported schema keywords are a 400.
import { client, check, model, error_of } from './common.mjs';

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    color: { enum: ['red', 'green', 'blue'] },
  },
  required: ['name', 'age', 'color'],
  additionalProperties: false,
};
const messages = [{ role: 'user', content: 'Describe a sailor as JSON.' }];
const response_format = { type: 'json_schema', json_schema: { name: 'sailor', schema, strict: true } };

function checkValue(text, what) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    check(false, `${what}: not JSON: '${text}'`);
  }
  check(Object.keys(value).join(',') === 'name,age,color', `${what}: keys ${Object.keys(value)}`);
  check(typeof value.name === 'string' && value.name.length >= 1 && [...value.name].length <= 12, `${what}: name ${value.name}`);
  check(Number.isInteger(value.age) && value.age >= 0 && value.age <= 120, `${what}: age ${value.age}`);
  check(['red', 'green', 'blue'].includes(value.color), `${what}: color ${value.color}`);
}

for (const seed of [1, 2, 3]) {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 120, temperature: 1.0, seed, response_format });
  check(r.choices[0].finish_reason === 'stop', `seed ${seed}: finish ${r.choices[0].finish_reason}: ${r.choices[0].message.content}`);
  checkValue(r.choices[0].message.content, `seed ${seed}`);
}

const stream = await client.chat.completions.create({ model, messages, max_tokens: 120, temperature: 0, response_format, stream: true });
let text = '';
for await (const chunk of stream) for (const c of chunk.choices) text += c.delta.content ?? '';
checkValue(text, 'streamed');

const bad = await error_of(client.chat.completions.create({
  model, messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', patternProperties: { a: {} } } } },
}));
check(bad && bad.status === 400 && bad.param === 'response_format', `unsupported keyword: ${bad}`);

const obj = await client.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0, response_format: { type: 'json_object' } });
check(obj.choices[0].message.content.startsWith('{'), `json_object: '${obj.choices[0].message.content}'`);
console.log('ok');
