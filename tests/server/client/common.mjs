// Shared by the client scripts: the official openai package (path in SLM_OPENAI_DIR), a client for
// the server URL given as the first argument, and a check that fails the script.
import { pathToFileURL } from 'node:url';

const dir = process.env.SLM_OPENAI_DIR;
if (!dir) {
  console.error('SLM_OPENAI_DIR is not set');
  process.exit(2);
}
const { default: OpenAI } = await import(pathToFileURL(`${dir}/index.mjs`).href);

export const baseURL = process.argv[2];
export const model = process.argv[3] ?? 'demo';
export const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: process.env.SLM_API_KEY ?? 'none', maxRetries: 0, timeout: 60000 });

export function check(condition, message) {
  if (!condition) {
    console.error(`FAIL: ${message}`);
    process.exit(1);
  }
}

// The API error a call throws (null when it succeeds).
export async function error_of(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  return null;
}

// The tool calls of a streamed chat answer, joined from their deltas by index, its finish reason and
// any text content that came with them.
export async function collect_tool_calls(stream) {
  const calls = [];
  let finish = null, content = '';
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      if (c.delta.content) content += c.delta.content;
      for (const d of c.delta.tool_calls ?? []) {
        if (!calls[d.index]) calls[d.index] = { id: d.id, type: d.type, function: { name: '', arguments: '' } };
        if (d.function?.name) calls[d.index].function.name += d.function.name;
        if (d.function?.arguments) calls[d.index].function.arguments += d.function.arguments;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { calls, finish, content };
}
