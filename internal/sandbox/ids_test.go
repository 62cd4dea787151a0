package sandbox

import (
	"context"
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

// idsInstance is the least an Instance can be, for StartInstance's
// bookkeeping; the runtimes' tests start real sandboxes through it.
type idsInstance struct{ id string }

func (i *idsInstance) ID() string                                  { return i.id }
func (i *idsInstance) Exec(context.Context, ExecSpec) (int, error) { return 0, nil }
func (i *idsInstance) Delete(context.Context) error                { return nil }

func TestStartInstance(t *testing.T) {
	var ids IDs[idsInstance]
	ran := false
	in, err := StartInstance(&ids, Spec{ID: "bad id!"}, func() (*idsInstance, error) { ran = true; return &idsInstance{}, nil })
	if !errors.Is(err, ErrInvalidSpec) || in != nil || ran {
		t.Errorf("StartInstance(invalid spec) = %v, %v (start ran: %v), want nil, ErrInvalidSpec, start not run", in, err, ran)
	}
	if ids.Held("bad id!") {
		t.Errorf("an invalid spec's id is held")
	}

	failed := errors.New("no")
	in, err = StartInstance(&ids, Spec{ID: "a"}, func() (*idsInstance, error) { return nil, failed })
	if !errors.Is(err, failed) || in != nil {
		// in != nil here would be a typed nil: callers' err checks pass, then a nil dereference.
		t.Errorf("StartInstance(failing start) = %#v, %v, want a nil Instance and its error", in, err)
	}

	in, err = StartInstance(&ids, Spec{ID: "a"}, func() (*idsInstance, error) { return &idsInstance{id: "a"}, nil })
	if err != nil || in == nil || in.ID() != "a" || !ids.Held("a") {
		t.Fatalf("StartInstance = %v, %v, held %v; want instance a, held", in, err, ids.Held("a"))
	}
}
