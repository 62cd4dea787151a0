package harness

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"
)

// The hostile-agent tests record each attack here; TestMain prints one
// summary line at the end and fails the run unless every attack tried was
// stopped with no leak.

// SummaryFile is the file under bin/ that holds the last run's summary.
const SummaryFile = "e2e-hostile-agent.txt"

type attackResult struct {
	name    string
	stopped bool
	leaks   int
}

var (
	attacksMu sync.Mutex
	attacks   []attackResult
)

// RecordAttack notes the outcome of one attack. stopped means the attack
// failed the specific way the test expects; leaks counts real values seen
// where the attacker could read them.
func RecordAttack(t testing.TB, name string, stopped bool, leaks int) {
	t.Helper()
	attacksMu.Lock()
	attacks = append(attacks, attackResult{name, stopped, leaks})
	attacksMu.Unlock()
	if !stopped {
		t.Errorf("attack %q was not stopped", name)
	}
	if leaks > 0 {
		t.Errorf("attack %q leaked a real value %d time(s)", name, leaks)
	}
}

// printAttackSummary prints the summary line and reports whether the run is
// clean. With no attack run (a -run filter), it prints nothing.
func printAttackSummary(w io.Writer) bool {
	attacksMu.Lock()
	defer attacksMu.Unlock()
	if len(attacks) == 0 {
		return true
	}
	stopped, leaks := 0, 0
	var open []string
	for _, a := range attacks {
		if a.stopped {
			stopped++
		} else {
			open = append(open, a.name)
		}
		leaks += a.leaks
	}
	sort.Strings(open)
	fmt.Fprintf(w, "e2e hostile agent: %d attacks tried, %d stopped, %d leaks\n", len(attacks), stopped, leaks)
	for _, n := range open {
		fmt.Fprintf(w, "e2e hostile agent: NOT STOPPED: %s\n", n)
	}
	return stopped == len(attacks) && leaks == 0
}
