"""Calls providers' APIs the way a script using only Python's standard
library does (urllib.request), with the keys from the environment.

Usage: python3 urllib_client.py PROVIDER...

Prints a JSON object: provider -> {call -> the answer's key field}, or
{"error": message} for a provider whose calls failed (then it exits 1).
The calls and fields are the same for every client of the e2e clients
suite (see clients_test.go).
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

PROMPT = "ping"


def request(method, url, headers=None, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    # urlopen raises HTTPError for any status >= 400.
    return urllib.request.urlopen(req, timeout=60)


def get_json(method, url, headers=None, body=None):
    with request(method, url, headers, body) as resp:
        return json.load(resp)


def post_json(url, headers, payload):
    h = dict(headers, **{"Content-Type": "application/json"})
    return get_json("POST", url, h, json.dumps(payload).encode())


def sse_events(resp):
    """Yields (event, data) of a text/event-stream response as they come."""
    event, data = None, []
    for raw in resp:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].lstrip(" "))
    if data:
        yield event, "\n".join(data)


def stream_json(url, headers, payload):
    h = dict(headers, **{"Content-Type": "application/json", "Accept": "text/event-stream"})
    return request("POST", url, h, json.dumps(payload).encode())


def openai():
    base = "https://api.openai.com/v1"
    auth = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
    out = {}
    out["models"] = get_json("GET", base + "/models", auth)["data"][0]["id"]
    out["chat"] = post_json(base + "/chat/completions", auth, chat)["choices"][0]["message"]["content"]
    text, done = "", False
    with stream_json(base + "/chat/completions", auth, dict(chat, stream=True)) as resp:
        for _, data in sse_events(resp):
            if data == "[DONE]":
                done = True
                break
            for choice in json.loads(data)["choices"]:
                text += choice["delta"].get("content") or ""
    if not done:
        raise RuntimeError("chat stream ended without [DONE]")
    out["chat-stream"] = text
    body = {"model": "gpt-4o-mini", "input": PROMPT}
    out["responses"] = post_json(base + "/responses", auth, body)["output"][0]["content"][0]["text"]
    text, done = "", False
    with stream_json(base + "/responses", auth, dict(body, stream=True)) as resp:
        for event, data in sse_events(resp):
            ev = json.loads(data)
            if ev["type"] != event:
                raise RuntimeError("event %r carries type %r" % (event, ev["type"]))
            if event == "response.output_text.delta":
                text += ev["delta"]
            elif event == "response.completed":
                done = True
    if not done:
        raise RuntimeError("responses stream ended without response.completed")
    out["responses-stream"] = text
    return out


def anthropic():
    url = "https://api.anthropic.com/v1/messages"
    auth = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
    out = {"messages": post_json(url, auth, body)["content"][0]["text"]}
    text, done = "", False
    with stream_json(url, auth, dict(body, stream=True)) as resp:
        for event, data in sse_events(resp):
            ev = json.loads(data)
            if event == "content_block_delta" and ev["delta"]["type"] == "text_delta":
                text += ev["delta"]["text"]
            elif event == "message_stop":
                done = True
            elif event == "error":
                raise RuntimeError("stream error: %s" % ev["error"]["message"])
    if not done:
        raise RuntimeError("messages stream ended without message_stop")
    out["messages-stream"] = text
    return out


def github():
    token = os.environ["GITHUB_TOKEN"]
    accept = {"Accept": "application/vnd.github+json"}
    user = get_json("GET", "https://api.github.com/user", dict(accept, Authorization="Bearer " + token))
    repo = get_json("GET", "https://api.github.com/repos/octo/demo", dict(accept, Authorization="token " + token))
    return {"user": user["login"], "repo": repo["full_name"]}


def slack_ok(answer):
    # Slack answers 200 to a bad token: the error is in the body.
    if not answer.get("ok"):
        raise RuntimeError("slack error: %s" % answer.get("error"))
    return answer


def slack():
    auth = {"Authorization": "Bearer " + os.environ["SLACK_BOT_TOKEN"]}
    who = slack_ok(get_json("GET", "https://slack.com/api/auth.test", auth))
    posted = slack_ok(post_json("https://slack.com/api/chat.postMessage",
                                auth, {"channel": "C0FAKE0001", "text": "hello from the sandbox"}))
    return {"auth.test": who["user"], "chat.postMessage": posted["message"]["text"]}


def stripe():
    key = os.environ["STRIPE_SECRET_KEY"]
    basic = {"Authorization": "Basic " + base64.b64encode((key + ":").encode()).decode()}
    customers = get_json("GET", "https://api.stripe.com/v1/customers?limit=1", basic)
    form = urllib.parse.urlencode({"amount": 2000, "currency": "usd", "source": "tok_visa"}).encode()
    charge = get_json("POST", "https://api.stripe.com/v1/charges",
                      {"Authorization": "Bearer " + key, "Content-Type": "application/x-www-form-urlencoded"}, form)
    return {
        "customers": customers["data"][0]["id"],
        "charge": "%s %s %d %s" % (charge["id"], charge["status"], charge["amount"], charge["currency"]),
    }


PROVIDERS = {"openai": openai, "anthropic": anthropic, "github": github, "slack": slack, "stripe": stripe}


def describe(e):
    if isinstance(e, urllib.error.HTTPError):
        return "%s: HTTP %d: %s" % (e.url, e.code, e.read()[:300].decode("utf-8", "replace"))
    return "%s: %s" % (type(e).__name__, e)


def main(names):
    if not names or any(n not in PROVIDERS for n in names):
        sys.exit("usage: urllib_client.py " + "|".join(PROVIDERS) + "...")
    result, failed = {}, False
    for name in names:
        try:
            result[name] = PROVIDERS[name]()
        except Exception as e:  # reported per provider; the test shows it
            result[name] = {"error": describe(e)}
            failed = True
    print(json.dumps(result, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
