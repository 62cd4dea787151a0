package gvisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// `runsc run --detach` starts two long-lived host processes per sandbox,
// the sandbox (the Sentry) and its gofer, and exits: they are orphaned.
// Whoever reaps orphans decides how long `runsc delete` takes, since it
// kills them and then polls every 100 ms until their PIDs are gone, which
// is when they are reaped, not when they die. The host's init may take its
// time (seconds on some VMs). So while a Runtime is open the daemon is a
// child subreaper (see New and Close): the orphans become its children, and it reaps
// them itself the moment they exit. Delete kills them first, through
// pidfds (no PID reuse race), waits until they are reaped, and only then
// runs `runsc delete`, which finds nothing left to wait for.

// subreaper counts the runtimes that need this process to be a child
// subreaper. It is process-wide state: while set, every orphaned
// descendant becomes this process's child, and one nobody reaps stays a
// zombie. So it is set only while a Runtime is open, and cleared again
// when the last one closes, unless it was set before the first.
var subreaper struct {
	sync.Mutex
	n       int
	already bool // set by someone else before the first hold
}

// holdSubreaper makes the orphaned descendants of this process its
// children instead of init's, until the matching releaseSubreaper.
func holdSubreaper() error {
	subreaper.Lock()
	defer subreaper.Unlock()
	if subreaper.n == 0 {
		var was int32
		if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&was)), 0, 0, 0); err != nil {
			return fmt.Errorf("read child subreaper flag: %w", err)
		}
		subreaper.already = was != 0
		if !subreaper.already {
			if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
				return fmt.Errorf("become a child subreaper: %w", err)
			}
		}
	}
	subreaper.n++
	return nil
}

// releaseSubreaper undoes one holdSubreaper.
func releaseSubreaper() {
	subreaper.Lock()
	defer subreaper.Unlock()
	subreaper.n--
	if subreaper.n == 0 && !subreaper.already {
		// Cannot fail for a valid argument.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	}
}

// hostProc is one of runsc's host processes, reaped by a goroutine of its
// own as soon as it exits.
type hostProc struct {
	pid  int
	fd   *os.File      // pidfd, in the runtime's poller
	done chan struct{} // closed once reaped (or found not to be our child)
}

// watchProc starts reaping pid, which must be a child of this process for
// the reaping to happen; for any other process done closes at once.
func watchProc(pid int) (*hostProc, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open pidfd of %d: %w", pid, err)
	}
	p := &hostProc{pid: pid, fd: os.NewFile(uintptr(fd), "pidfd"), done: make(chan struct{})}
	go p.reap()
	return p, nil
}

// reap waits, in the poller (no thread blocked), until the process exits,
// and collects its status.
func (p *hostProc) reap() {
	defer close(p.done)
	defer p.fd.Close()
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
		// Signo is SIGCHLD once a child was reaped, 0 while it runs;
		// an error (ECHILD: not our child) ends the wait too.
		return err != nil || info.Signo != 0
	})
}

// kill sends SIGKILL to the process unless it is already reaped.
func (p *hostProc) kill() {
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.PidfdSendSignal(int(fd), unix.SIGKILL, nil, 0)
	})
}

// wait returns when the process is reaped or ctx is done.
func (p *hostProc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runscState is the part of runsc's state file (one JSON file per
// container under its --root) that names its host processes.
type runscState struct {
	GoferPid int `json:"goferPid"`
	Sandbox  *struct {
		Pid int `json:"pid"`
	} `json:"sandbox"`
}

// watchSandbox starts reaping the sandbox and gofer processes of the
// container id, read from runsc's state file. Either may be nil (not
// running, or not found): Delete then leaves the waiting to runsc.
func (r *Runtime) watchSandbox(id string) (sandboxProc, gofer *hostProc, err error) {
	b, err := os.ReadFile(filepath.Join(r.root, id+"_sandbox:"+id+".state"))
	if err != nil {
		return nil, nil, fmt.Errorf("read runsc state: %w", err)
	}
	var st runscState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil, fmt.Errorf("decode runsc state: %w", err)
	}
	var errs []error
	if st.Sandbox != nil && st.Sandbox.Pid > 0 {
		if sandboxProc, err = watchProc(st.Sandbox.Pid); err != nil {
			errs = append(errs, err)
		}
	}
	if st.GoferPid > 0 {
		if gofer, err = watchProc(st.GoferPid); err != nil {
			errs = append(errs, err)
		}
	}
	return sandboxProc, gofer, errors.Join(errs...)
}
