package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/client"
)

func TestSandboxTimeout(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	fr := &fakeRunner{}
	env.server.Sandboxes = fr
	t.Cleanup(env.server.Close)

	sb, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "short", Timeout: "50ms"})
	if err != nil {
		t.Fatal(err)
	}
	if sb.ExpiresAt == nil || !sb.ExpiresAt.After(sb.CreatedAt) {
		t.Errorf("CreateSandbox expiresAt = %v, want after createdAt %v", sb.ExpiresAt, sb.CreatedAt)
	}
	// Wait for the state to change; the bound is only against a hang.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := env.client.GetSandbox(ctx, "short")
		if err != nil {
			t.Fatal(err)
		}
		if got.State == stateExpired {
			if got.ExpiresAt != nil {
				t.Errorf("expired sandbox expiresAt = %v, want none", got.ExpiresAt)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox state = %q after its timeout, want %q", got.State, stateExpired)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fr.Running(sb.ID) {
		t.Errorf("runner still runs the expired sandbox")
	}
	_, err = env.client.Exec(ctx, "short", client.ExecRequest{Args: []string{"true"}}, nil, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != CodeNotRunning {
		t.Errorf("Exec in an expired sandbox = %v, want %s", err, CodeNotRunning)
	}

	// Deleting a sandbox drops its timeout.
	long, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "long", Timeout: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if long.ExpiresAt == nil {
		t.Errorf("CreateSandbox(timeout 1h) expiresAt = nil, want a time")
	}
	if err := env.client.DeleteSandbox(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	if _, ok := env.server.expiresAt(long.ID); ok {
		t.Errorf("deleted sandbox still has a timeout")
	}

	none, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if none.ExpiresAt != nil {
		t.Errorf("CreateSandbox without timeout expiresAt = %v, want nil", none.ExpiresAt)
	}
}

func TestSandboxTimeoutInvalid(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	for _, v := range []string{"abc", "30", "0s", "-1m", "24h1s", "sk-ant-api03-looks-like-a-key"} {
		t.Run(v, func(t *testing.T) {
			_, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "bad", Timeout: v})
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != CodeInvalidField {
				t.Fatalf("CreateSandbox(timeout %q) = %v, want 400 %s", v, err, CodeInvalidField)
			}
			if !strings.HasPrefix(ae.Message, "timeout ") {
				t.Errorf("CreateSandbox(timeout %q) message = %q, want it to name the field", v, ae.Message)
			}
		})
	}
	if _, err := env.client.GetSandbox(ctx, "bad"); !client.IsNotFound(err) {
		t.Errorf("GetSandbox after refused creates = %v, want not_found", err)
	}
}
