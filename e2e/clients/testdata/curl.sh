#!/bin/sh
# Calls providers' APIs with curl, as their documentation shows, with the
# keys from the environment.
#
# Usage: sh curl.sh PROVIDER...
#
# For each call it prints a line "=== PROVIDER CALL" and then the raw
# answer; the test reads the answers. A call curl fails (any HTTP error:
# --fail-with-body) is followed by "=== PROVIDER CALL failed", and the
# script goes on with the next call and exits 1 at the end.
set -u
status=0

# call NAME CURL-ARGS... makes one call of the provider in $p.
call() {
	name=$1
	shift
	echo "=== $p $name"
	if ! curl -sS --fail-with-body "$@"; then
		echo
		echo "=== $p $name failed"
		status=1
	fi
	echo
}

openai() {
	chat='{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]'
	call models https://api.openai.com/v1/models -H "Authorization: Bearer $OPENAI_API_KEY"
	call chat https://api.openai.com/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" \
		-H "Content-Type: application/json" -d "$chat}"
	call chat-stream -N https://api.openai.com/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" \
		-H "Content-Type: application/json" -d "$chat, \"stream\": true}"
	call responses https://api.openai.com/v1/responses -H "Authorization: Bearer $OPENAI_API_KEY" \
		-H "Content-Type: application/json" -d '{"model": "gpt-4o-mini", "input": "ping"}'
	call responses-stream -N https://api.openai.com/v1/responses -H "Authorization: Bearer $OPENAI_API_KEY" \
		-H "Content-Type: application/json" -d '{"model": "gpt-4o-mini", "input": "ping", "stream": true}'
}

anthropic() {
	msg='{"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "ping"}]'
	call messages https://api.anthropic.com/v1/messages -H "x-api-key: $ANTHROPIC_API_KEY" \
		-H "anthropic-version: 2023-06-01" -H "content-type: application/json" -d "$msg}"
	call messages-stream -N https://api.anthropic.com/v1/messages -H "x-api-key: $ANTHROPIC_API_KEY" \
		-H "anthropic-version: 2023-06-01" -H "content-type: application/json" -d "$msg, \"stream\": true}"
}

github() {
	call user https://api.github.com/user -H "Authorization: Bearer $GITHUB_TOKEN" \
		-H "Accept: application/vnd.github+json"
	call repo https://api.github.com/repos/octo/demo -H "Authorization: token $GITHUB_TOKEN"
}

slack() {
	call auth.test https://slack.com/api/auth.test -H "Authorization: Bearer $SLACK_BOT_TOKEN"
	call chat.postMessage https://slack.com/api/chat.postMessage -H "Authorization: Bearer $SLACK_BOT_TOKEN" \
		-H "Content-type: application/json; charset=utf-8" \
		-d '{"channel": "C0FAKE0001", "text": "hello from the sandbox"}'
}

stripe() {
	# -u "KEY:" is how Stripe's documentation calls the API with curl.
	call customers -G https://api.stripe.com/v1/customers -u "$STRIPE_SECRET_KEY:" -d limit=1
	call charge https://api.stripe.com/v1/charges -H "Authorization: Bearer $STRIPE_SECRET_KEY" \
		-d amount=2000 -d currency=usd -d source=tok_visa
}

if [ $# -eq 0 ]; then
	echo "usage: sh curl.sh openai|anthropic|github|slack|stripe..." >&2
	exit 2
fi
for p in "$@"; do
	case "$p" in
	openai | anthropic | github | slack | stripe) "$p" ;;
	*)
		echo "curl.sh: unknown provider $p" >&2
		exit 2
		;;
	esac
done
exit $status
