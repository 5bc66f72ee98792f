// Package stack runs the example's whole scaled-out deployment on loopback
// as real processes: a PostgreSQL primary and streaming replicas, N app
// instances (the example binary, built once) sharing an upload directory
// and a secret, and nginx balancing between them with the settings the
// README recommends for production. It is used by example/cmd/cluster (make
// cluster), the end-to-end tests and the fault suite.
//
// The instances reach the primary through a multi-host connection string
// with target_session_attrs=read-write listing every node, and each
// original replica with target_session_attrs=standby, so they follow a
// failover ([pgcluster.Cluster.Failover]) without being restarted or
// reconfigured: a promoted replica stops being read from, and is read from
// again once it has been rebuilt as a replica.
//
// Every process is started with a parent-death signal, so nothing outlives
// the program that started it, and [Stack.Close] stops them all.
package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sharednothing/sharednothing/example/internal/pgcluster"
)

// ErrNoNginx reports that nginx is not installed.
var ErrNoNginx = errors.New("stack: nginx not found (apt-get install -y nginx-light)")

// Options configures [Start]. The zero value is a primary, one replica and
// three instances with no replica delay.
type Options struct {
	// Instances is the number of app instances. Default 3.
	Instances int
	// Replicas is the number of streaming replicas. Default 1.
	Replicas int
	// ReplicaDelay is the replicas' steady replication lag
	// (recovery_min_apply_delay). Default 0.
	ReplicaDelay time.Duration
	// Secret is the application secret all instances share. Default: a
	// random one.
	Secret string
	// Binary is the example app binary. Default: built with [Build] into
	// the stack's directory.
	Binary string
	// Drain is the instances' -drain; default [Drain].
	Drain time.Duration
	// Env is added to every instance's environment.
	Env []string
	// Log, if set, receives every process's output as well as its log file.
	Log io.Writer
}

// Stack is a running deployment.
type Stack struct {
	// URL is nginx's base URL, e.g. http://127.0.0.1:41234.
	URL string
	// PG is the database cluster: PG.Primary() and PG.Replicas().
	PG *pgcluster.Cluster
	// ReplicaNodes are the nodes the instances were given as replicas (the
	// replicas at start), named replica-1, replica-2, … by the instances.
	ReplicaNodes []*pgcluster.Node
	// Instances are the app instances, named app-1, app-2, ….
	Instances []*Instance
	// Dir holds the logs, the nginx prefix and the shared upload directory
	// (Dir/data). It is removed by Close.
	Dir string
	// Secret is the secret the instances were started with.
	Secret string

	nginx *exec.Cmd
	done  chan struct{}
	opts  Options
}

// Start builds what is missing and starts the whole stack, returning when
// every instance answers /healthz and nginx forwards to them. On error
// everything started is stopped.
func Start(ctx context.Context, opts Options) (s *Stack, err error) {
	if opts.Instances <= 0 {
		opts.Instances = 3
	}
	if opts.Drain <= 0 {
		opts.Drain = Drain
	}
	if opts.Secret == "" {
		b := make([]byte, 32)
		rand.Read(b)
		opts.Secret = hex.EncodeToString(b)
	}
	nginxBin, err := NginxPath()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sharednothing-stack-")
	if err != nil {
		return nil, err
	}
	s = &Stack{Dir: dir, Secret: opts.Secret, opts: opts}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return s, err
	}

	// Build the app while PostgreSQL starts.
	built := make(chan error, 1)
	if opts.Binary == "" {
		go func() {
			bin, err := Build(ctx, dir)
			opts.Binary = bin
			built <- err
		}()
	} else {
		built <- nil
	}
	s.PG, err = pgcluster.Start(ctx, pgcluster.Options{Replicas: opts.Replicas})
	if berr := <-built; err == nil && berr != nil {
		err = berr
	}
	if err != nil {
		return s, err
	}
	s.opts.Binary = opts.Binary
	s.ReplicaNodes = s.PG.Replicas()
	if opts.ReplicaDelay > 0 {
		for _, r := range s.PG.Replicas() {
			if err := r.SetApplyDelay(ctx, opts.ReplicaDelay); err != nil {
				return s, err
			}
		}
	}

	ports, err := pgcluster.FreePorts(opts.Instances + 1)
	if err != nil {
		return s, err
	}
	for i := range opts.Instances {
		in := &Instance{
			Name: fmt.Sprintf("app-%d", i+1),
			Addr: fmt.Sprintf("127.0.0.1:%d", ports[i+1]),
			// A short drain: longer than nginx's upstream keepalive_timeout.
			Env: append([]string{"DRAIN=" + opts.Drain.String()}, opts.Env...),
			s:   s,
		}
		in.Args = []string{"-secret", opts.Secret}
		s.Instances = append(s.Instances, in)
	}
	// Start the instances together: each takes a moment to open its pools.
	errs := make(chan error, len(s.Instances))
	for _, in := range s.Instances {
		go func() { errs <- in.Start(ctx) }()
	}
	for range s.Instances {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return s, err
	}

	s.URL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	if err := s.startNginx(ctx, nginxBin, ports[0]); err != nil {
		return s, err
	}
	return s, nil
}

// Build compiles the example app into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "example-app")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sharednothing/sharednothing/example")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("stack: go build example: %w\n%s", err, out)
	}
	return bin, nil
}

// NginxPath finds the nginx binary, or returns [ErrNoNginx].
func NginxPath() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", ErrNoNginx
}

// Drain is the -drain the stack gives its instances by default: longer than
// the upstream keepalive_timeout in [NginxConf], so that by the time a
// draining instance closes its listener nginx holds no idle connection to
// it, and shorter than fail_timeout, so that nginx, once it has counted the
// draining instance's first 503, does not come back before it has stopped.
const Drain = 2 * time.Second

// NginxConf is the nginx configuration of the stack, the one the README
// recommends (with {{…}} placeholders for paths, ports and the servers).
//
//   - Upstream keepalive: nginx reuses connections to the instances instead
//     of opening one per request (that cost 3× in throughput and 10× in p99
//     at 32 connections). Idle ones are closed by nginx after 1 s, sooner
//     than an instance's -drain, so an instance that drains and then stops
//     accepting is never sent a request on a connection it is closing.
//   - Passive health checks: an instance that refuses or drops a connection
//     or times out (max_fails=1) is skipped for fail_timeout (3 s), then
//     tried again. A draining instance drops page reads unanswered, so
//     nginx leaves it within its first request or so, and fail_timeout
//     outlasts the rest of the drain: by the time the instance closes its
//     listener nginx sends it nothing, POSTs included.
//   - Retries: a GET that met an error or a timeout goes to the next
//     instance; nginx never resends a POST it has already sent
//     (non_idempotent is off), and retries one that never reached an
//     instance (a refused connection). The app's 503s are neither retried
//     nor counted as failures (no http_503): they mean the shared database
//     is down, which every instance would answer alike, and counting them
//     would take all instances out, replica reads included.
//   - Thumbnails are retried only when the connection failed, never after
//     a timeout: a render that took too long is not started again on every
//     other instance, and a full render queue's 503 reaches the client.
//   - Buffering: responses are buffered (an instance is freed as soon as it
//     has answered, whatever the client's speed); the access log is written
//     in 64 KiB batches.
const NginxConf = `daemon off;
master_process off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events { worker_connections 4096; }
http {
	access_log {{dir}}/access.log combined buffer=64k flush=1s;
	client_body_temp_path {{dir}}/client_body;
	proxy_temp_path {{dir}}/proxy;
	fastcgi_temp_path {{dir}}/fastcgi;
	uwsgi_temp_path {{dir}}/uwsgi;
	scgi_temp_path {{dir}}/scgi;
	client_max_body_size 12m;
	upstream app {
{{servers}}		keepalive 64;
		keepalive_timeout 1s;
		keepalive_requests 100000;
	}
	server {
		listen 127.0.0.1:{{port}} backlog=4096;
		# nginx's own 502/504 (an instance died mid-request, or no instance
		# answered) become a clean 503 the client may retry.
		error_page 502 504 =503 /_unavailable;
		location = /_unavailable {
			internal;
			add_header Retry-After 1 always;
			default_type text/plain;
			return 503 "No app instance could finish this request (one may have restarted). A form you sent may or may not have been saved: send it again, it will not be saved twice.\n";
		}
		proxy_http_version 1.1;
		proxy_set_header Connection "";
		proxy_set_header Host $http_host;
		proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
		proxy_connect_timeout 1s;
		proxy_send_timeout 30s;
		proxy_read_timeout 30s;
		proxy_buffering on;
		proxy_buffers 16 16k;
		proxy_buffer_size 16k;
		location / {
			proxy_pass http://app;
			proxy_next_upstream error timeout;
			proxy_next_upstream_tries 3;
			proxy_next_upstream_timeout 5s;
		}
		location /thumbs/ {
			proxy_pass http://app;
			proxy_next_upstream error;
			proxy_next_upstream_tries 3;
		}
	}
}
`

func (s *Stack) startNginx(ctx context.Context, bin string, port int) error {
	dir := filepath.Join(s.Dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var servers strings.Builder
	for _, in := range s.Instances {
		fmt.Fprintf(&servers, "\t\tserver %s max_fails=1 fail_timeout=3s;\n", in.Addr)
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{servers}}", servers.String(), "{{port}}", strconv.Itoa(port)).Replace(NginxConf)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("stack: start nginx: %w", err)
	}
	s.nginx, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(s.done) }()
	return waitHealthy(ctx, s.URL, s.done, func() string { return tail(filepath.Join(dir, "error.log")) + tail(logf.Name()) })
}

// Close stops nginx, every instance and PostgreSQL, and removes Dir.
func (s *Stack) Close() error {
	if s == nil {
		return nil
	}
	if s.nginx != nil {
		syscall.Kill(-s.nginx.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	for _, in := range s.Instances {
		in.Kill()
	}
	s.PG.Close()
	return os.RemoveAll(s.Dir)
}

// Logs returns the tail of every instance's log and nginx's error log, for
// a failing test to print.
func (s *Stack) Logs() string {
	var b strings.Builder
	for _, in := range s.Instances {
		fmt.Fprintf(&b, "--- %s (%s) ---\n%s", in.Name, in.Addr, tail(in.logPath()))
	}
	fmt.Fprintf(&b, "--- nginx ---\n%s", tail(filepath.Join(s.Dir, "nginx", "error.log")))
	return b.String()
}

// Instance is one app process. Args and Env are what the next [Instance.Start]
// uses; change them between [Instance.Stop] and Start (or use
// [Instance.Restart]) to roll a new configuration.
type Instance struct {
	Name string // app-N, also its X-Instance
	Addr string // 127.0.0.1:PORT, fixed across restarts
	// Args are the flags besides -addr, -instance, -database-url,
	// -replica-url and -data-dir, which the stack sets.
	Args []string
	// Env is added to the process environment.
	Env []string

	s    *Stack
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (in *Instance) logPath() string { return filepath.Join(in.s.Dir, in.Name+".log") }

// Start starts the process and waits until it answers /healthz.
func (in *Instance) Start(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd != nil {
		return fmt.Errorf("stack: %s is already running", in.Name)
	}
	args := []string{"-addr", in.Addr, "-instance", in.Name, "-database-url", in.s.PG.PrimaryDSN(),
		"-data-dir", filepath.Join(in.s.Dir, "data")}
	for _, n := range in.s.ReplicaNodes {
		args = append(args, "-replica-url", n.ReplicaDSN())
	}
	cmd := exec.Command(in.s.opts.Binary, append(args, in.Args...)...)
	// Only what the app needs from the parent: a test's SECRET or
	// DATABASE_URL must not leak in.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}, in.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.OpenFile(in.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var out io.Writer = logf
	if in.s.opts.Log != nil {
		out = io.MultiWriter(logf, in.s.opts.Log)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("stack: start %s: %w", in.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	in.cmd, in.done = cmd, done
	return waitHealthy(ctx, "http://"+in.Addr, done, func() string { return tail(in.logPath()) })
}

// Kill stops the process at once with SIGKILL, as a crash would, and waits
// for it to exit. Killing a stopped instance does nothing.
func (in *Instance) Kill() { in.signal(syscall.SIGKILL) }

// Stop shuts the process down gracefully and waits for it to exit: SIGTERM,
// then the instance drains for [Drain] and finishes what is in flight.
func (in *Instance) Stop() { in.signal(syscall.SIGTERM) }

func (in *Instance) signal(sig syscall.Signal) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return
	}
	in.cmd.Process.Signal(sig)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		in.cmd.Process.Kill()
		<-in.done
	}
	in.cmd = nil
}

// Signal sends sig to the running process and returns at once; [Instance.Wait]
// waits for it to exit.
func (in *Instance) Signal(sig syscall.Signal) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return fmt.Errorf("stack: %s is not running", in.Name)
	}
	return in.cmd.Process.Signal(sig)
}

// Wait waits until the process has exited (after [Instance.Signal]) and
// marks the instance stopped, so that it can be started again.
func (in *Instance) Wait() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return
	}
	<-in.done
	in.cmd = nil
}

// Running reports whether the process is running.
func (in *Instance) Running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return false
	}
	select {
	case <-in.done:
		return false
	default:
		return true
	}
}

// PID returns the process id, or 0 when the instance is not running.
func (in *Instance) PID() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return 0
	}
	return in.cmd.Process.Pid
}

// Restart stops the instance gracefully, sets its Args (when args is not
// nil) and starts it again.
func (in *Instance) Restart(ctx context.Context, args []string) error {
	in.Stop()
	if args != nil {
		in.Args = args
	}
	return in.Start(ctx)
}

// Health is an instance's /healthz document.
type Health struct {
	Instance string `json:"instance"`   // the instance's name (its X-Instance)
	Draining bool   `json:"draining"`   // SIGTERM received: answering, but about to stop
	Database string `json:"database"`   // "postgres" or "sqlite"
	Primary  bool   `json:"primary_up"` // whether the primary answered a ping
	// Replicas are the replicas the instance's router knows, and whether it
	// uses them.
	Replicas []struct {
		Name string `json:"name"`
		Up   bool   `json:"up"`
	} `json:"replicas"`
	// Bus is the invalidation bus's state and counters (coherent.Stats),
	// nil without one.
	Bus *struct {
		Connected  bool   `json:"connected"`
		Connects   uint64 `json:"connects"`
		Flushes    uint64 `json:"flushes"`
		Received   uint64 `json:"received"`
		Sent       uint64 `json:"sent"`
		SendErrors uint64 `json:"send_errors"`
		LastError  string `json:"last_error"`
	} `json:"bus"`
}

// Health fetches the instance's /healthz directly (not through nginx).
func (in *Instance) Health(ctx context.Context) (Health, error) {
	var h Health
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+in.Addr+"/healthz", nil)
	if err != nil {
		return h, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, fmt.Errorf("stack: %s /healthz: %s: %w", in.Name, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK && !h.Draining {
		return h, fmt.Errorf("stack: %s /healthz: %s", in.Name, resp.Status)
	}
	return h, nil
}

// waitHealthy polls base+"/healthz" until it answers 200, the process exits
// (done is closed) or 30 s pass.
func waitHealthy(ctx context.Context, base string, done <-chan struct{}, logs func() string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/healthz", nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/healthz: %s", resp.Status)
		}
		last = err
		select {
		case <-done:
			return fmt.Errorf("stack: %s exited during start-up:\n%s", base, logs())
		case <-ctx.Done():
			return fmt.Errorf("stack: %s not healthy: %v\n%s", base, last, logs())
		case <-tick.C:
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
