package clients

import (
	"net/http"

	"github.com/standin/standin/e2e/harness"
)

// A fake of the OpenAI API (api.openai.com): enough of models, chat
// completions and responses, plain and streamed, for the openai npm SDK,
// with OpenAI's bearer auth and error bodies.

const openaiHost = "api.openai.com"

var openaiKey = harness.RealValue("sk-proj-", 48)

func init() { harness.Register(openaiHost, openaiFake()) }

const openaiModel = "gpt-4o-mini"

func openaiFake() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"object": "list",
			"data": []any{
				map[string]any{"id": openaiModel, "object": "model", "created": 1721172741, "owned_by": "system"},
				map[string]any{"id": "gpt-4.1", "object": "model", "created": 1744316542, "owned_by": "system"},
			},
		})
	})
	mux.HandleFunc("POST /v1/chat/completions", openaiChat)
	mux.HandleFunc("POST /v1/responses", openaiResponses)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		openaiError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "Invalid URL ("+r.Method+" "+r.URL.Path+")")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !same(bearer(r.Header), openaiKey) {
			// OpenAI names the key's last characters; the fake names
			// nothing of it.
			openaiError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func openaiError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

func openaiChat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
		Stream bool `json:"stream"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Model == "" || len(req.Messages) == 0 {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "model and messages are required")
		return
	}
	text := youSaid + promptText(req.Messages[len(req.Messages)-1].Content)
	const id, created = "chatcmpl-fake1", 1700000000
	if !req.Stream {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []any{map[string]any{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": text, "refusal": nil},
				"logprobs":      nil,
				"finish_reason": "stop",
			}},
			"usage": map[string]any{"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12},
		})
		return
	}
	s := newSSE(w)
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
	}
	s.event("", chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	for _, part := range chunks(text, 4) {
		s.event("", chunk(map[string]any{"content": part}, nil))
	}
	s.event("", chunk(map[string]any{}, "stop"))
	s.event("", "[DONE]")
}

func openaiResponses(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Input  any    `json:"input"`
		Stream bool   `json:"stream"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Model == "" || req.Input == nil {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "model and input are required")
		return
	}
	text := youSaid + promptText(req.Input)
	const respID, msgID = "resp_fake1", "msg_fake1"
	part := func(t string) map[string]any {
		return map[string]any{"type": "output_text", "text": t, "annotations": []any{}, "logprobs": []any{}}
	}
	item := func(status string, content []any) map[string]any {
		return map[string]any{"type": "message", "id": msgID, "status": status, "role": "assistant", "content": content}
	}
	response := func(status string, output []any) map[string]any {
		resp := map[string]any{
			"id": respID, "object": "response", "created_at": 1700000000, "status": status,
			"model": req.Model, "output": output, "error": nil, "incomplete_details": nil,
			"instructions": nil, "metadata": map[string]any{}, "parallel_tool_calls": true,
			"temperature": 1.0, "top_p": 1.0, "tool_choice": "auto", "tools": []any{},
			"usage": nil,
		}
		if status == "completed" {
			resp["usage"] = map[string]any{
				"input_tokens": 8, "input_tokens_details": map[string]any{"cached_tokens": 0},
				"output_tokens": 4, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
				"total_tokens": 12,
			}
		}
		return resp
	}
	done := item("completed", []any{part(text)})
	if !req.Stream {
		writeJSON(w, http.StatusOK, response("completed", []any{done}))
		return
	}
	// The event sequence of a one-message response, as the API sends it
	// and the SDK's ResponseStream accumulates it.
	s := newSSE(w)
	seq := 0
	emit := func(typ string, fields map[string]any) {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		s.event(typ, fields)
	}
	at := func(fields map[string]any) map[string]any {
		fields["item_id"] = msgID
		fields["output_index"] = 0
		fields["content_index"] = 0
		return fields
	}
	emit("response.created", map[string]any{"response": response("in_progress", []any{})})
	emit("response.in_progress", map[string]any{"response": response("in_progress", []any{})})
	emit("response.output_item.added", map[string]any{"output_index": 0, "item": item("in_progress", []any{})})
	emit("response.content_part.added", at(map[string]any{"part": part("")}))
	for _, d := range chunks(text, 4) {
		emit("response.output_text.delta", at(map[string]any{"delta": d, "logprobs": []any{}}))
	}
	emit("response.output_text.done", at(map[string]any{"text": text, "logprobs": []any{}}))
	emit("response.content_part.done", at(map[string]any{"part": part(text)}))
	emit("response.output_item.done", map[string]any{"output_index": 0, "item": done})
	emit("response.completed", map[string]any{"response": response("completed", []any{done})})
}
