package attacks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/standin/standin/e2e/harness"
)

// readTheKey: the agent looks for the real value where it lives (its
// environment, other processes, standin's data directory, the daemon's
// memory through a core dump) and finds stand-ins or nothing.
func readTheKey(t *testing.T, ag *agent) {
	dataDir := harness.Srv.DataDir

	run(t, "read the key/printenv", func(t *testing.T, a *attack) {
		r := harness.Exec(t, ag.name, "printenv")
		a.sandboxSaw(r)
		a.want(r.Code == 0, "printenv: exit %d", r.Code)
		for _, kv := range []string{"API_KEY=" + ag.apiStandIn, "B_KEY=" + ag.bStandIn, "REBIND_KEY=" + ag.rebindStandIn} {
			a.want(strings.Contains(r.Stdout, kv+"\n"), "printenv lacks %q: the variables must hold the stand-ins", kv)
		}
	})

	run(t, "read the key/proc self environ", func(t *testing.T, a *attack) {
		r := harness.Sh(t, ag.name, `tr '\0' '\n' < /proc/self/environ`)
		a.sandboxSaw(r)
		a.want(r.Code == 0 && strings.Contains(r.Stdout, "API_KEY="+ag.apiStandIn+"\n"),
			"/proc/self/environ: exit %d, want API_KEY holding the stand-in:\n%s", r.Code, r.Output())
	})

	// PID 1 is the sandbox's init, started before any secret was bound:
	// stand-ins go to each command, not into the sandbox's spec. The
	// daemon is not among the sandbox's processes at all.
	run(t, "read the key/proc 1 environ and every process", func(t *testing.T, a *attack) {
		r := harness.Sh(t, ag.name, `for p in /proc/[0-9]*; do echo "== $p"; tr '\0' '\n' < $p/environ; echo "-- cmdline"; tr '\0' ' ' < $p/cmdline; echo; done`)
		a.sandboxSaw(r)
		a.want(r.Code == 0, "reading /proc: exit %d\n%s", r.Code, r.Stderr)
		init := section(r.Stdout, "== /proc/1\n")
		a.want(strings.Contains(init, "PATH=") && !strings.Contains(init, "API_KEY"),
			"/proc/1 (the sandbox's init) = %q, want an environment without the variables", init)
		for _, bad := range []string{harness.Srv.Bin, " serve ", "runsc"} {
			a.want(!strings.Contains(r.Stdout, bad), "a process inside the sandbox mentions %q: the host's processes must not be visible", bad)
		}
	})

	// The data directory (outside /tmp, so hiding it is standin's doing)
	// is an empty read-only tmpfs inside. The files exist on the host.
	dataDirAttack := func(name string, files ...string) {
		run(t, "read the key/"+name, func(t *testing.T, a *attack) {
			for _, f := range files {
				if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
					t.Fatalf("on the host: %v (the attack must aim at a file that exists)", err)
				}
			}
			script := `ls -A ` + dataDir + `; echo "ls=$?"`
			for _, f := range files {
				script += `; cat ` + filepath.Join(dataDir, f) + `; echo "` + f + `=$?"`
			}
			r := harness.Sh(t, ag.name, script)
			a.sandboxSaw(r)
			a.want(strings.HasPrefix(r.Stdout, "ls=0\n"), "ls %s inside: %q, want an empty directory", dataDir, r.Stdout)
			for _, f := range files {
				p := filepath.Join(dataDir, f)
				a.want(strings.Contains(r.Stdout, "\n"+f+"=1\n") && strings.Contains(r.Stderr, "cat: "+p+": No such file or directory"),
					"cat %s inside: want ENOENT\n%s", p, r.Output())
			}
		})
	}
	dataDirAttack("data dir", "admin.token", "ca.key", "api.sock")
	dataDirAttack("master key", "master.key")
	dataDirAttack("database", "standin.db")

	// Core dumps: the sandbox has no core_pattern to point at a program
	// and cannot write one; a crash inside leaves no core; the daemon,
	// whose memory holds unsealed values, is invisible from inside and
	// runs with RLIMIT_CORE 0.
	run(t, "read the key/core dumps", func(t *testing.T, a *attack) {
		r := harness.Sh(t, ag.name, `cat /proc/sys/kernel/core_pattern; echo "read=$?"
echo '|/tmp/grab' > /proc/sys/kernel/core_pattern; echo "write=$?"
cd /tmp && sh -c 'ulimit -c unlimited; kill -SEGV $$'; echo "crash=$?"
ls -A /tmp; echo "ls=$?"`)
		a.sandboxSaw(r)
		a.want(r.Stdout == "read=1\nwrite=2\ncrash=139\nls=0\n", "inside: %q, want no core_pattern to read or write and no core after a crash", r.Stdout)
		a.want(strings.Contains(r.Stderr, "core_pattern: No such file or directory") &&
			strings.Contains(r.Stderr, "cannot create /proc/sys/kernel/core_pattern: Permission denied"),
			"core_pattern errors: %q, want ENOENT reading and EACCES writing", r.Stderr)
		limits := daemonLimits(t)
		a.want(strings.Contains(limits, "Max core file size        0                    0"),
			"the daemon's limits: want a core file size of 0 (hard and soft):\n%s", limits)
	})
}

// section returns the text after header up to the next "== " line.
func section(out, header string) string {
	_, rest, ok := strings.Cut(out, header)
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n== "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// daemonLimits returns /proc/PID/limits of the harness's `standin serve`.
func daemonLimits(t *testing.T) string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		argv := strings.Split(string(b), "\x00")
		if len(argv) > 1 && argv[0] == harness.Srv.Bin && argv[1] == "serve" {
			limits, err := os.ReadFile(filepath.Join(filepath.Dir(p), "limits"))
			if err != nil {
				t.Fatal(err)
			}
			return string(limits)
		}
	}
	t.Fatalf("no process runs %s serve", harness.Srv.Bin)
	return ""
}
