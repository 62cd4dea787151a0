package server

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// harden keeps the daemon's memory, which holds unsealed values at swap
// time, out of core files and away from other processes of the same user:
// no core dumps (RLIMIT_CORE 0) and not dumpable, which also makes
// /proc/<pid>/mem, environ and maps readable only by root and blocks
// ptrace by the same user. Children get the default again at execve.
func harden() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("disable core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("mark process not dumpable: %w", err)
	}
	return nil
}

// dumpable reports the process's dumpable flag (for tests).
func dumpable() (bool, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return v != 0, err
}
