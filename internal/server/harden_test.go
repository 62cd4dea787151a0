package server

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestHarden: after harden the process writes no core file and is not
// dumpable (its /proc/<pid>/mem and environ are closed to same-user
// processes, ptrace by them is refused).
func TestHarden(t *testing.T) {
	if err := harden(); err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != 0 || lim.Max != 0 {
		t.Errorf("RLIMIT_CORE = %d/%d, want 0/0", lim.Cur, lim.Max)
	}
	d, err := dumpable()
	if err != nil {
		t.Fatal(err)
	}
	if d {
		t.Error("process is still dumpable")
	}
}
