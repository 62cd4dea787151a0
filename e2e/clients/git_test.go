package clients

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/e2e/harness"
)

const (
	seedReadme = "# demo\nseeded by the e2e clients suite\n"
	pushedFile = "pushed from the sandbox\n"
)

// testGit clones the fake GitHub's private repository over HTTPS in
// sandbox sb, commits and pushes (testdata/git.sh), and checks that the
// commit landed in the bare repository behind the fake.
func testGit(t *testing.T, sb string, p provider, standIns map[string]string) {
	bare, backend := seedBareRepo(t)
	gitFake.serve(filepath.Dir(filepath.Dir(bare)), backend)
	t.Cleanup(func() { gitFake.serve("", "") })

	mark := harness.Srv.Up.Mark()
	r := harness.Exec(t, sb, "sh", harness.Path("clients/testdata/git.sh"))
	harness.AssertNoRealValue(t, "git's output", r.Output())
	if r.Code != 0 {
		t.Fatalf("git.sh in the sandbox: exit %d\n%s", r.Code, redact(r.Output()))
	}
	readme, rest, _ := strings.Cut(r.Stdout, "head ")
	if readme != seedReadme {
		t.Errorf("README.md of the clone = %q, want %q", readme, seedReadme)
	}
	var head, remote string
	for _, line := range strings.Split("head "+rest, "\n") {
		if v, ok := strings.CutPrefix(line, "head "); ok {
			head = v
		}
		if v, ok := strings.CutPrefix(line, "remote "); ok {
			remote = v
		}
	}
	if head == "" || remote != head {
		t.Errorf("after the push the sandbox's HEAD is %q and the remote's main %q, want the same commit\n%s", head, remote, redact(r.Stdout))
	}

	// The push landed: the bare repository's main is the sandbox's commit,
	// with its file.
	if got := gitOut(t, "", "--git-dir", bare, "rev-parse", "main"); got != head {
		t.Errorf("bare repository's main = %q, want the pushed commit %q", got, head)
	}
	if got := gitOut(t, "", "--git-dir", bare, "show", "main:from-sandbox.txt"); got != strings.TrimSpace(pushedFile) {
		t.Errorf("from-sandbox.txt in the bare repository = %q, want %q", got, pushedFile)
	}
	if got := gitOut(t, "", "--git-dir", bare, "log", "-1", "--format=%s%n%an", "main"); got != "commit from the sandbox\nstandin agent" {
		t.Errorf("last commit in the bare repository = %q, want the sandbox's", got)
	}

	// git asks without a credential first, as it always does, and uses its
	// credential helper after the 401; every request with a credential
	// carried the real value, and the push was one of them.
	reqs := upstreamSince(t, p, mark, standIns)
	withCred, pushed := 0, false
	for _, req := range reqs {
		if req.Host != githubHost {
			t.Errorf("%v: git called a host other than %s", req, githubHost)
			continue
		}
		if req.Header.Get("Authorization") == "" {
			continue
		}
		withCred++
		checkCredential(t, p, req, standIns[p.id])
		if req.Method == "POST" && strings.HasSuffix(req.Path, "/git-receive-pack") {
			pushed = true
		}
	}
	if withCred == 0 || !pushed {
		t.Errorf("%d of %d requests carried a credential, push among them: %v; want the clone's and the push's (%v)", withCred, len(reqs), pushed, reqs)
	}
}

// seedBareRepo makes a bare repository octo/demo.git under a temporary
// project root with one commit on main, which the fake serves with
// http.receivepack on (GitHub lets a token with write access push). It
// returns the repository's path and git-http-backend's.
func seedBareRepo(t *testing.T) (bare, backend string) {
	t.Helper()
	dir := t.TempDir()
	bare = filepath.Join(dir, "root", githubOwner, githubRepo+".git")
	work := filepath.Join(dir, "work")
	gitOut(t, "", "init", "-q", "--bare", "-b", "main", bare)
	gitOut(t, "", "--git-dir", bare, "config", "http.receivepack", "true")
	gitOut(t, "", "init", "-q", "-b", "main", work)
	if err := os.WriteFile(filepath.Join(work, "README.md"), []byte(seedReadme), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, work, "add", "README.md")
	gitOut(t, work, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "seed")
	gitOut(t, work, "push", "-q", bare, "main")
	return bare, filepath.Join(gitOut(t, "", "--exec-path"), "git-http-backend")
}

// gitOut runs git on the host, isolated from the machine's git
// configuration, and returns its trimmed output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
