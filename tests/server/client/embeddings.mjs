// Embeddings through the official client (which asks for base64 and decodes it).
import { client, check, model } from './common.mjs';

const r = await client.embeddings.create({ model, input: ['a story of the sea', 'a story of the sea', 'one two three four'] });
check(r.object === 'list' && r.data.length === 3, `data ${r.data.length}`);
const [a, b, c] = r.data.map((d) => d.embedding);
check(a.length > 8 && a.length === c.length, `dimensions ${a.length}`);
const norm = Math.sqrt(a.reduce((s, x) => s + x * x, 0));
check(Math.abs(norm - 1) < 1e-3, `norm ${norm}`);
check(a.every((x, i) => Math.abs(x - b[i]) < 1e-5), 'the same text gives the same embedding');
const cos = a.reduce((s, x, i) => s + x * c[i], 0);
check(cos < 0.9999, `different texts give different embeddings (cosine ${cos})`);
check(r.usage.prompt_tokens > 6, `usage ${JSON.stringify(r.usage)}`);
const floats = await client.embeddings.create({ model, input: 'a story of the sea', encoding_format: 'float' });
check(floats.data[0].embedding.every((x, i) => Math.abs(x - a[i]) < 1e-5), 'float and base64 agree');
console.log('ok');
