// Errors reach the official client as its typed API errors with status, type, param and code.
import { client, check, model, error_of } from './common.mjs';

const messages = [{ role: 'user', content: 'hi' }];
const unknown = await error_of(client.chat.completions.create({ model: 'no-such-model', messages }));
check(unknown && unknown.status === 404, `unknown model: ${unknown}`);
check(unknown.code === 'model_not_found', `code ${unknown.code}`);

const badType = await error_of(client.chat.completions.create({ model, messages, temperature: 'hot' }));
check(badType && badType.status === 400, `bad type: ${badType}`);
check(badType.param === 'temperature', `param ${badType.param}`);
check(badType.type === 'invalid_request_error', `type ${badType.type}`);

const long = await error_of(client.completions.create({ model, prompt: 'the whale '.repeat(400), max_tokens: 4 }));
check(long && long.status === 400 && long.code === 'context_length_exceeded', `long prompt: ${long}`);

const stops = await error_of(client.completions.create({ model, prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }));
check(stops && stops.status === 400 && stops.param === 'stop', `five stops: ${stops}`);
console.log('ok');
