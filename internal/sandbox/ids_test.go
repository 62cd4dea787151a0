package sandbox

import (
	"errors"
	"testing"
)

func TestIDs(t *testing.T) {
	var ids IDs[int]
	one := 1
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := ids.Start("a", func() (*int, error) { close(started); <-release; return &one, nil })
		done <- err
	}()
	<-started
	if !ids.Held("a") {
		t.Errorf("Held(%q) during its Start = false, want true (reserved)", "a")
	}
	if _, err := ids.Start("a", func() (*int, error) { return &one, nil }); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Start(%q) while it starts = %v, want ErrInvalidSpec", "a", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Start(%q) = %v", "a", err)
	}
	if _, err := ids.Start("a", func() (*int, error) { return &one, nil }); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Start(%q) of a held id = %v, want ErrInvalidSpec", "a", err)
	}

	failed := errors.New("no")
	if _, err := ids.Start("b", func() (*int, error) { return nil, failed }); !errors.Is(err, failed) {
		t.Errorf("Start(%q) = %v, want the start's error", "b", err)
	}
	if ids.Held("b") {
		t.Errorf("Held(%q) after a failed Start = true, want false", "b")
	}
	ids.Forget("a")
	if ids.Held("a") {
		t.Errorf("Held(%q) after Forget = true, want false", "a")
	}
}
