// Package pgtest starts a real PostgreSQL primary with streaming replicas from
// the local server binaries, for tests. One cluster per test package, started
// in TestMain with [Run].
//
// The servers run as child processes that die with the test binary (even when
// it panics), their data lives in a fresh directory under os.TempDir(), and
// [Cluster.Close] removes it. When the test runs as root, the servers run as
// the "postgres" OS user, because initdb refuses to run as root.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/internal/pgwire"
)

// BinDir is where the PostgreSQL server binaries are looked for first; PATH
// is searched when they are not there.
var BinDir = "/usr/lib/postgresql/15/bin"

// ErrNoPostgres reports that the PostgreSQL server binaries are not installed.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres, pg_basebackup) not found")

// Node is one PostgreSQL server of a cluster.
type Node struct {
	Name string // "primary" or "replica-N" (N from 1)
	Port int    // loopback TCP port, fixed across restarts
	Dir  string // data directory
	DSN  string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable

	c   *Cluster
	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has been reaped.
	exited chan struct{}
}

// Cluster is a primary and its streaming replicas.
type Cluster struct {
	Primary  *Node   // the read-write server
	Replicas []*Node // streaming replicas of Primary, replaying its WAL

	root string
	cred *syscall.Credential
	bin  string
}

// Available reports whether the PostgreSQL binaries are installed.
func Available() error {
	_, err := binDir()
	return err
}

func binDir() (string, error) {
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err == nil {
		return BinDir, nil
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", ErrNoPostgres
	}
	return filepath.Dir(p), nil
}

// Start initialises and starts a primary and n streaming replicas. On error
// everything already started is stopped and removed.
func Start(ctx context.Context, n int) (c *Cluster, err error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	c = &Cluster{bin: bin}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return c, fmt.Errorf("pgtest: running as root needs a postgres OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	sweepStale()
	if c.root, err = os.MkdirTemp("", "sharednothing-pg-"); err != nil {
		return c, err
	}
	if err := os.WriteFile(filepath.Join(c.root, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return c, err
	}
	if err := c.chown(c.root); err != nil {
		return c, err
	}

	ports, err := FreePorts(n + 1)
	if err != nil {
		return c, err
	}
	c.Primary = c.newNode("primary", ports[0])
	if err := c.run(ctx, "initdb", "-D", c.Primary.Dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return c, err
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"wal_level = replica\nfsync = off\nfull_page_writes = off\n"+
		"max_wal_senders = 10\nwal_keep_size = '256MB'\nhot_standby = on\nhot_standby_feedback = on\n"+
		"wal_receiver_status_interval = 1s\nwal_retrieve_retry_interval = 200ms\nmax_connections = 200\nshared_buffers = '32MB'\n",
		c.Primary.Port, c.Primary.Dir)
	if err := appendFile(filepath.Join(c.Primary.Dir, "postgresql.conf"), conf); err != nil {
		return c, err
	}
	if err := appendFile(filepath.Join(c.Primary.Dir, "pg_hba.conf"), "\nhost replication all 127.0.0.1/32 trust\n"); err != nil {
		return c, err
	}
	if err := c.Primary.Start(ctx); err != nil {
		return c, err
	}

	// Base backups one after another (they share the primary), then start
	// the replicas together.
	for i := 0; i < n; i++ {
		r := c.newNode(fmt.Sprintf("replica-%d", i+1), ports[i+1])
		c.Replicas = append(c.Replicas, r)
		if err := c.run(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Primary.Port), "-U", "postgres",
			"-D", r.Dir, "-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
			return c, err
		}
		if err := appendFile(filepath.Join(r.Dir, "postgresql.conf"),
			fmt.Sprintf("\nport = %d\nunix_socket_directories = '%s'\n", r.Port, r.Dir)); err != nil {
			return c, err
		}
	}
	errs := make(chan error, n)
	for _, r := range c.Replicas {
		go func() { errs <- r.Start(ctx) }()
	}
	for range c.Replicas {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return c, err
}

func (c *Cluster) newNode(name string, port int) *Node {
	return &Node{
		Name: name,
		Port: port,
		Dir:  filepath.Join(c.root, name),
		DSN:  fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		c:    c,
	}
}

// Close stops every server at once and removes the cluster's files. It is
// safe to call more than once.
func (c *Cluster) Close() error {
	if c == nil {
		return nil
	}
	for _, n := range append([]*Node{c.Primary}, c.Replicas...) {
		if n != nil {
			n.kill()
		}
	}
	if c.root != "" {
		return os.RemoveAll(c.root)
	}
	return nil
}

// Open returns a *sql.DB (the stdlib-only internal/pgwire driver) for the node. The caller closes it.
func (n *Node) Open() (*sql.DB, error) { return sql.Open(pgwire.DriverName, n.DSN) }

// Start starts the node's server and waits until it accepts connections.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("pgtest: %s already running", n.Name)
	}
	cmd := exec.Command(filepath.Join(n.c.bin, "postgres"), "-D", n.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: n.c.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.OpenFile(filepath.Join(n.c.root, n.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	n.cmd, n.exited = cmd, exited

	// Wait for it to accept queries (a replica accepts them once consistent).
	db, err := n.Open()
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pgtest: %s exited during start-up; log: %s", n.Name, n.tailLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("pgtest: %s not ready after 30s: %v; log: %s", n.Name, err, n.tailLog())
		case <-tick.C:
		}
	}
}

// Stop shuts the server down (fast shutdown: sessions are disconnected) and
// waits for it to exit. Stopping a stopped node does nothing.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil
	}
	n.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
	n.cmd = nil
	return nil
}

// Restart stops and starts the node.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Stop(); err != nil {
		return err
	}
	return n.Start(ctx)
}

func (n *Node) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	// SIGQUIT is PostgreSQL's immediate shutdown; kill the whole group in
	// case children linger.
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.exited
	}
	n.cmd = nil
}

// Exec runs one SQL statement on the node.
func (n *Node) Exec(ctx context.Context, query string, args ...any) error {
	db, err := n.Open()
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, query, args...)
	return err
}

// PauseReplay freezes WAL replay on a replica: what it shows stops changing
// until [Node.ResumeReplay]. It waits until the pause has taken effect.
func (n *Node) PauseReplay(ctx context.Context) error {
	db, err := n.Open()
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		return err
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var state string
		if err := db.QueryRowContext(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
			return err
		}
		if state == "paused" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// ResumeReplay lets a paused replica catch up again.
func (n *Node) ResumeReplay(ctx context.Context) error {
	return n.Exec(ctx, "SELECT pg_wal_replay_resume()")
}

// SetApplyDelay sets recovery_min_apply_delay on a replica (0 turns it off),
// giving it a steady replication lag.
func (n *Node) SetApplyDelay(ctx context.Context, d time.Duration) error {
	if err := n.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET recovery_min_apply_delay = '%dms'", d.Milliseconds())); err != nil {
		return err
	}
	return n.Exec(ctx, "SELECT pg_reload_conf()")
}

// WaitReplayed waits until the replica has replayed the primary's current
// WAL position.
func (c *Cluster) WaitReplayed(ctx context.Context, r *Node) error {
	return r.WaitReplayed(ctx, c.Primary)
}

// WaitReplayed waits until replica n has replayed primary's current WAL
// position; after a failover, primary is the promoted node.
func (n *Node) WaitReplayed(ctx context.Context, primary *Node) error {
	p, err := primary.Open()
	if err != nil {
		return err
	}
	defer p.Close()
	var lsn string
	if err := p.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return err
	}
	db, err := n.Open()
	if err != nil {
		return err
	}
	defer db.Close()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var ok bool
		err := db.QueryRowContext(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: %s did not replay %s: %w", n.Name, lsn, ctx.Err())
		case <-tick.C:
		}
	}
}

// Promote turns a replica into a primary (pg_promote) and waits until it
// accepts writes. Its timeline goes up by one. The [Cluster] fields keep
// their names: after a promotion, c.Primary is the old primary.
func (n *Node) Promote(ctx context.Context) error {
	db, err := n.Open()
	if err != nil {
		return err
	}
	defer db.Close()
	var ok bool
	if err := db.QueryRowContext(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
		return fmt.Errorf("pgtest: promote %s: %w", n.Name, err)
	}
	if !ok {
		return fmt.Errorf("pgtest: promote %s: not promoted within 60 s", n.Name)
	}
	return nil
}

// Follow re-points a replica at another primary (after a failover, the
// promoted node): it sets primary_conninfo and reloads, and the replica
// then follows the new primary's latest timeline. It does not wait; see
// [Node.WaitReplayed].
func (n *Node) Follow(ctx context.Context, primary *Node) error {
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", primary.Port, n.Name)
	if err := n.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET primary_conninfo = '%s'", conninfo)); err != nil {
		return err
	}
	return n.Exec(ctx, "SELECT pg_reload_conf()")
}

// Kill stops the server at once, as a crash would (SIGQUIT: immediate
// shutdown, no checkpoint). Killing a stopped node does nothing.
func (n *Node) Kill() { n.kill() }

// MultiHostDSN returns a connection string listing nodes in order with
// target_session_attrs=read-write, which connects to the first of them
// that accepts writes: a pool opened with it follows a promotion.
func MultiHostDSN(nodes ...*Node) string {
	hosts := make([]string, len(nodes))
	for i, n := range nodes {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", n.Port)
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/postgres?sslmode=disable&target_session_attrs=read-write&connect_timeout=2"
}

// Run is a TestMain helper: it starts a cluster of a primary and n replicas,
// stores it in *c, runs the tests, closes the cluster and exits. When the
// PostgreSQL binaries are missing, *c stays nil and tests calling [Need] are
// skipped, unless the environment has CI=true: then the run fails at once.
func Run(m *testing.M, n int, c **Cluster) {
	os.Exit(run(m, n, c))
}

func run(m *testing.M, n int, c **Cluster) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cl, err := Start(ctx, n)
	cancel()
	switch {
	case errors.Is(err, ErrNoPostgres) && os.Getenv("CI") != "true":
		fmt.Fprintln(os.Stderr, "pgtest:", err, "- tests that need PostgreSQL are skipped (they fail when CI=true)")
	case err != nil:
		fmt.Fprintln(os.Stderr, "pgtest: cannot start the test cluster:", err)
		return 1
	}
	*c = cl
	defer cl.Close()
	return m.Run()
}

// Need returns c, or skips the test when no cluster could be started because
// PostgreSQL is not installed (outside CI; see [Run]).
func Need(t testing.TB, c *Cluster) *Cluster {
	t.Helper()
	if c == nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(ErrNoPostgres)
		}
		t.Skip(ErrNoPostgres)
	}
	return c
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

func (n *Node) tailLog() string {
	b, _ := os.ReadFile(filepath.Join(n.c.root, n.Name+".log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sweepStale removes the directories of clusters whose test process died
// without cleaning up (a panic, a SIGKILL). Their servers died with it.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "sharednothing-pg-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// FreePorts asks the kernel for n distinct free loopback ports (free when
// it returns; another process may still take one before it is used).
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
