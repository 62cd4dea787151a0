package clients

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/standin/standin/e2e/harness"
)

// A fake of the Slack Web API (slack.com/api): auth.test and
// chat.postMessage with a bearer token. Like Slack, it answers 200 even to
// a bad token, with {"ok":false,"error":"invalid_auth"} (or "not_authed"
// without one): a client must look at "ok", and so do the tests.

const slackHost = "slack.com"

var slackKey = harness.RealValue("xoxb-", 50)

func init() { harness.Register(slackHost, slackFake()) }

const slackChannel = "C0FAKE0001"

func slackFake() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/auth.test", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"ok": true, "url": "https://standin-e2e.slack.com/", "team": "standin e2e",
			"user": "standin-bot", "team_id": "T0FAKE0001", "user_id": "U0FAKE0001", "bot_id": "B0FAKE0001",
		})
	})
	mux.HandleFunc("POST /api/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
		// Slack takes JSON or a form.
		var req struct {
			Channel string `json:"channel"`
			Text    string `json:"text"`
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_json"})
				return
			}
		} else {
			req.Channel, req.Text = r.PostFormValue("channel"), r.PostFormValue("text")
		}
		switch {
		case req.Channel != slackChannel:
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "channel_not_found"})
		case req.Text == "":
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "no_text"})
		default:
			const ts = "1700000000.000100"
			writeJSON(w, http.StatusOK, map[string]any{
				"ok": true, "channel": req.Channel, "ts": ts,
				"message": map[string]any{"type": "message", "user": "U0FAKE0001", "text": req.Text, "ts": ts},
			})
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch tok := bearer(r.Header); {
		case tok == "":
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_authed"})
		case !same(tok, slackKey):
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
		default:
			mux.ServeHTTP(w, r)
		}
	})
}
