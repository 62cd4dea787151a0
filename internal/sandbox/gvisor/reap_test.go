package gvisor

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// subreaperFlag is this process's PR_GET_CHILD_SUBREAPER.
func subreaperFlag(t *testing.T) int32 {
	t.Helper()
	var v int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCloseReleasesSubreaper: a Runtime makes the process a child subreaper
// only while open. Left set, a process that goes on without sandboxes (a
// test binary running `standin serve` in-process, then another as a child
// it kills) adopts orphans it never reaps, and whoever waits for them to
// go (runsc delete) waits forever.
func TestCloseReleasesSubreaper(t *testing.T) {
	subreaper.Lock()
	held := subreaper.n
	subreaper.Unlock()
	before := subreaperFlag(t)

	r1, r2 := newRuntime(t), newRuntime(t)
	if got := subreaperFlag(t); got != 1 {
		t.Fatalf("subreaper flag with two runtimes open = %d, want 1", got)
	}
	r1.Close()
	if got := subreaperFlag(t); got != 1 {
		t.Errorf("subreaper flag with one runtime still open = %d, want 1", got)
	}
	r2.Close()
	r2.Close() // a second Close must not release another runtime's hold
	subreaper.Lock()
	n := subreaper.n
	subreaper.Unlock()
	if n != held {
		t.Errorf("subreaper holds after closing both = %d, want %d (as before)", n, held)
	}
	if got := subreaperFlag(t); got != before {
		t.Errorf("subreaper flag after closing both = %d, want %d (as before)", got, before)
	}
	if held == 0 && before != 0 {
		t.Errorf("subreaper flag set with no runtime open")
	}
}
