package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// process is a program the drill started. Its output goes to files in the
// test's temp dir; it is stopped by its PID when the test ends.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string // stdout and stderr
	done chan struct{}
	err  error // set before done closes
}

// start runs bin with args and env (nothing inherited beyond PATH, HOME
// and TMPDIR, so no real key from the caller's environment leaks in). The
// process dies with the test binary (Pdeathsig), and a t.Cleanup sends it
// SIGTERM, then SIGKILL after grace.
func start(t *testing.T, dir, name string, env []string, grace time.Duration, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}, env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		out.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t, grace) })
	return p
}

// stop sends SIGTERM to the process's PID and waits up to grace, then
// kills it. Stopping a process that already exited does nothing.
func (p *process) stop(t *testing.T, grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		t.Logf("%s (pid %d) ignored SIGTERM for %v; killing it", p.name, p.cmd.Process.Pid, grace)
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// tail returns the end of the process's output, for failure messages.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// waitHTTP polls url until it answers 200, for at most limit, failing the
// test when the process exits first or the time runs out.
func (p *process) waitHTTP(t *testing.T, url string, limit time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		if done, err := p.exited(); done {
			t.Fatalf("%s exited before it answered %s: %v\n%s", p.name, url, err, p.tail())
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		last = err
		<-tick.C
	}
	t.Fatalf("%s did not answer %s within %v (last: %v)\n%s", p.name, url, limit, last, p.tail())
}

// freePorts reserves n distinct loopback ports by listening on them at
// once, then releases them for the processes to take. Another program
// could take one in between; on a test machine that is rare, and the
// process then fails to start with a clear error.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs[i] = "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	return addrs
}

// goBuild builds the examples module's packages into dir, one binary each,
// named after the last element of the package path.
func goBuild(t *testing.T, dir string, pkgs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = ".." // the examples module
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
}

// need finds a program the drill drives: without it the drill skips, or
// fails when CI is set (CI installs it; see .ci/run).
func need(t *testing.T, name string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	missing(t, fmt.Sprintf("%s is not installed", name))
	return ""
}

func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("drill: %s, and CI is set (.ci/run installs the drill's packages)", why)
	}
	t.Skipf("drill: %s; skipping (set CI to make this a failure)", why)
}
