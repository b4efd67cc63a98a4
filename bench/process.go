package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is a deskrelay or ceiling subprocess.
type server struct {
	name string
	cmd  *exec.Cmd
	HTTP string // host:port
	NATS string // nats://host:port

	logTo io.Writer // nil, or where every stderr line goes

	mu   sync.Mutex
	tail []string // last lines of stderr, for errors
	done chan struct{}
	err  error // of Wait, after done
}

// startServer starts cmd, waits for its "listening" log line (deskrelay's
// JSON log, or the ceiling's copy of it) and then for GET /readyz to
// answer 200, at most timeout in all. The process gets SIGTERM when the
// harness dies (Pdeathsig) and is stopped by stop.
//
// With a non-nil logTo, every line of the process's stderr is copied there.
func startServer(ctx context.Context, name string, cmd *exec.Cmd, timeout time.Duration, logTo io.Writer) (*server, error) {
	s := &server{name: name, cmd: cmd, done: make(chan struct{}), logTo: logTo}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	addrs := make(chan [2]string, 1)
	go s.readLog(stderr, addrs)
	go func() { s.err = cmd.Wait(); close(s.done) }()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case a := <-addrs:
		s.HTTP, s.NATS = a[0], a[1]
	case <-s.done:
		return nil, fmt.Errorf("%s exited before listening: %v\n%s", name, s.err, s.lastLines())
	case <-ctx.Done():
		s.stop()
		return nil, fmt.Errorf("%s not listening after %s: %w\n%s", name, timeout, ctx.Err(), s.lastLines())
	}
	if s.NATS == "" {
		s.stop()
		return nil, fmt.Errorf("%s has no NATS listener", name)
	}
	if s.HTTP == "" { // a NATS server (-nats external): nothing more to wait for
		return s, nil
	}
	// Bounded poll: deskrelay is ready once its streams exist and the
	// profile directory is loaded.
	last := "no answer"
	for {
		if code, err := get(ctx, "http://"+s.HTTP+"/readyz"); err == nil && code == http.StatusOK {
			return s, nil
		} else if err != nil {
			last = err.Error()
		} else {
			last = "status " + strconv.Itoa(code)
		}
		select {
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("%s not ready after %s (last /readyz: %s)\n%s", name, timeout, last, s.lastLines())
		case <-s.done:
			return nil, fmt.Errorf("%s exited while starting: %v\n%s", name, s.err, s.lastLines())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// readLog keeps the last lines of the process's stderr and sends the
// addresses of its "listening" line.
func (s *server) readLog(r io.Reader, addrs chan<- [2]string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		if s.logTo != nil {
			fmt.Fprintln(s.logTo, line)
		}
		s.mu.Lock()
		s.tail = append(s.tail, line)
		if len(s.tail) > 40 {
			s.tail = s.tail[len(s.tail)-40:]
		}
		s.mu.Unlock()
		if sent || !strings.Contains(line, `"listening"`) {
			continue
		}
		var l struct{ Msg, HTTP, NATS string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
			addrs <- [2]string{l.HTTP, l.NATS}
			sent = true
		}
	}
}

func (s *server) lastLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// stop sends SIGTERM and waits up to 20s for a graceful stop, then kills.
func (s *server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("%s did not stop within 20s of SIGTERM; killed", s.name)
	}
	var ee *exec.ExitError
	if s.err != nil && !errors.As(s.err, &ee) {
		return s.err
	}
	if s.err != nil {
		return fmt.Errorf("%s: %v\n%s", s.name, s.err, s.lastLines())
	}
	return nil
}

// procStats is what /proc tells about a process.
type procStats struct {
	CPU time.Duration // user + system
	RSS int64         // bytes
	HWM int64         // peak RSS since start, bytes
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// readProc reads /proc/<pid>/stat and /proc/<pid>/status.
func readProc(pid int) (procStats, error) {
	var st procStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return st, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return st, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return st, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	st.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return st, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			st.RSS = kb << 10
		} else {
			st.HWM = kb << 10
		}
	}
	return st, nil
}
