// Calls OpenAI or Anthropic through the official SDK (openai,
// @anthropic-ai/sdk; pinned in package.json), unmodified and configured
// only by the environment, as an agent would: the key from
// OPENAI_API_KEY / ANTHROPIC_API_KEY, the default base URLs.
//
// Usage: node sdk.mjs openai|anthropic...
//
// Prints a JSON object: provider -> {call -> the answer's text}, or
// {"error": message} for a provider whose calls failed (then it exits 1):
// the same calls as the other clients of the e2e clients suite (see
// clients_test.go).
//
// It lives next to package.json so that its imports resolve to
// node_modules here.

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

const PROMPT = 'ping';

async function openai() {
  const client = new OpenAI({ maxRetries: 0 });
  const out = {};
  for await (const model of client.models.list()) {
    out.models = model.id;
    break;
  }
  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }] };
  out.chat = (await client.chat.completions.create(chat)).choices[0].message.content;

  // Raw stream: the SDK's SSE decoder, chunk by chunk.
  let text = '';
  const chunks = await client.chat.completions.create({ ...chat, stream: true });
  for await (const chunk of chunks) text += chunk.choices[0]?.delta?.content ?? '';
  out['chat-stream'] = text;

  const body = { model: 'gpt-4o-mini', input: PROMPT };
  out.responses = (await client.responses.create(body)).output_text;

  // The helper: ResponseStream accumulates every event into the final
  // response, so it checks the whole event sequence.
  text = '';
  const rs = client.responses.stream(body);
  rs.on('response.output_text.delta', (ev) => { text += ev.delta; });
  const final = await rs.finalResponse();
  if (final.output_text !== text) {
    throw new Error(`streamed deltas ${JSON.stringify(text)} != final output_text ${JSON.stringify(final.output_text)}`);
  }
  out['responses-stream'] = final.output_text;
  return out;
}

async function anthropic() {
  const client = new Anthropic({ maxRetries: 0 });
  const body = { model: 'claude-sonnet-4-6', max_tokens: 64, messages: [{ role: 'user', content: PROMPT }] };
  const msg = await client.messages.create(body);
  const out = { messages: msg.content[0].text };

  // The helper: MessageStream accumulates the events into the final
  // message; the text events must add up to it.
  let text = '';
  const ms = client.messages.stream(body);
  ms.on('text', (delta) => { text += delta; });
  const final = await ms.finalMessage();
  if (final.content[0].text !== text || final.stop_reason !== 'end_turn') {
    throw new Error(`streamed text ${JSON.stringify(text)} != final ${JSON.stringify(final.content)} (${final.stop_reason})`);
  }
  out['messages-stream'] = text;
  return out;
}

const providers = { openai, anthropic };
const names = process.argv.slice(2);
if (!names.length || names.some((n) => !(n in providers))) {
  console.error('usage: node sdk.mjs openai|anthropic...');
  process.exit(2);
}
const result = {};
for (const name of names) {
  try {
    result[name] = await providers[name]();
  } catch (err) {
    result[name] = { error: `${err.constructor.name}: ${err.message}` };
    process.exitCode = 1;
  }
}
console.log(JSON.stringify(result));
