// Calls providers' APIs the way a script using Node's built-in fetch does,
// with the keys from the environment.
//
// Usage: node fetch_client.mjs PROVIDER...
//
// Prints a JSON object: provider -> {call -> the answer's key field}, or
// {"error": message} for a provider whose calls failed (then it exits 1).
// The calls and fields are the same for every client of the e2e clients
// suite (see clients_test.go).

const PROMPT = 'ping';

async function call(method, url, headers = {}, body) {
  const res = await fetch(url, { method, headers, body });
  if (!res.ok) {
    throw new Error(`${method} ${url}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  }
  return res;
}

const getJSON = async (url, headers) => (await call('GET', url, headers)).json();

const postJSON = async (url, headers, payload) =>
  (await call('POST', url, { ...headers, 'Content-Type': 'application/json' }, JSON.stringify(payload))).json();

// sseEvents yields {event, data} of a text/event-stream body as it arrives.
async function* sseEvents(res) {
  const decoder = new TextDecoder();
  let buf = '';
  let event = null;
  let data = [];
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (data.length) yield { event, data: data.join('\n') };
        event = null;
        data = [];
      } else if (line.startsWith('event:')) {
        event = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
    }
  }
  if (data.length) yield { event, data: data.join('\n') };
}

const stream = (url, headers, payload) =>
  call('POST', url, { ...headers, 'Content-Type': 'application/json', Accept: 'text/event-stream' }, JSON.stringify(payload));

async function openai() {
  const base = 'https://api.openai.com/v1';
  const auth = { Authorization: `Bearer ${process.env.OPENAI_API_KEY}` };
  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }] };
  const out = {};
  out.models = (await getJSON(`${base}/models`, auth)).data[0].id;
  out.chat = (await postJSON(`${base}/chat/completions`, auth, chat)).choices[0].message.content;
  let text = '';
  let done = false;
  for await (const { data } of sseEvents(await stream(`${base}/chat/completions`, auth, { ...chat, stream: true }))) {
    if (data === '[DONE]') {
      done = true;
      break;
    }
    for (const choice of JSON.parse(data).choices) text += choice.delta.content ?? '';
  }
  if (!done) throw new Error('chat stream ended without [DONE]');
  out['chat-stream'] = text;
  const body = { model: 'gpt-4o-mini', input: PROMPT };
  out.responses = (await postJSON(`${base}/responses`, auth, body)).output[0].content[0].text;
  text = '';
  done = false;
  for await (const { event, data } of sseEvents(await stream(`${base}/responses`, auth, { ...body, stream: true }))) {
    const ev = JSON.parse(data);
    if (ev.type !== event) throw new Error(`event ${event} carries type ${ev.type}`);
    if (event === 'response.output_text.delta') text += ev.delta;
    if (event === 'response.completed') done = true;
  }
  if (!done) throw new Error('responses stream ended without response.completed');
  out['responses-stream'] = text;
  return out;
}

async function anthropic() {
  const url = 'https://api.anthropic.com/v1/messages';
  const auth = { 'x-api-key': process.env.ANTHROPIC_API_KEY, 'anthropic-version': '2023-06-01' };
  const body = { model: 'claude-sonnet-4-6', max_tokens: 64, messages: [{ role: 'user', content: PROMPT }] };
  const out = { messages: (await postJSON(url, auth, body)).content[0].text };
  let text = '';
  let done = false;
  for await (const { event, data } of sseEvents(await stream(url, auth, { ...body, stream: true }))) {
    const ev = JSON.parse(data);
    if (event === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    if (event === 'message_stop') done = true;
    if (event === 'error') throw new Error(`stream error: ${ev.error.message}`);
  }
  if (!done) throw new Error('messages stream ended without message_stop');
  out['messages-stream'] = text;
  return out;
}

async function github() {
  const token = process.env.GITHUB_TOKEN;
  const accept = { Accept: 'application/vnd.github+json' };
  const user = await getJSON('https://api.github.com/user', { ...accept, Authorization: `Bearer ${token}` });
  const repo = await getJSON('https://api.github.com/repos/octo/demo', { ...accept, Authorization: `token ${token}` });
  return { user: user.login, repo: repo.full_name };
}

// Slack answers 200 to a bad token: the error is in the body.
function slackOK(answer) {
  if (!answer.ok) throw new Error(`slack error: ${answer.error}`);
  return answer;
}

async function slack() {
  const auth = { Authorization: `Bearer ${process.env.SLACK_BOT_TOKEN}` };
  const who = slackOK(await getJSON('https://slack.com/api/auth.test', auth));
  const posted = slackOK(await postJSON('https://slack.com/api/chat.postMessage', auth,
    { channel: 'C0FAKE0001', text: 'hello from the sandbox' }));
  return { 'auth.test': who.user, 'chat.postMessage': posted.message.text };
}

async function stripe() {
  const key = process.env.STRIPE_SECRET_KEY;
  const basic = { Authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` };
  const customers = await getJSON('https://api.stripe.com/v1/customers?limit=1', basic);
  const form = new URLSearchParams({ amount: '2000', currency: 'usd', source: 'tok_visa' });
  const charge = await (await call('POST', 'https://api.stripe.com/v1/charges', { Authorization: `Bearer ${key}` }, form)).json();
  return {
    customers: customers.data[0].id,
    charge: `${charge.id} ${charge.status} ${charge.amount} ${charge.currency}`,
  };
}

const providers = { openai, anthropic, github, slack, stripe };
const names = process.argv.slice(2);
if (!names.length || names.some((n) => !(n in providers))) {
  console.error(`usage: node fetch_client.mjs ${Object.keys(providers).join('|')}...`);
  process.exit(2);
}
const result = {};
for (const name of names) {
  try {
    result[name] = await providers[name]();
  } catch (err) {
    const cause = err.cause ? ` (cause: ${err.cause.message ?? err.cause})` : '';
    result[name] = { error: `${err.name}: ${err.message}${cause}` };
    process.exitCode = 1;
  }
}
console.log(JSON.stringify(result));
