// Package pgcluster runs a throwaway PostgreSQL primary with streaming
// replicas from the local server binaries, for the example: the demo (make
// demo), the scaled-out stack (make cluster) and the end-to-end and fault
// tests. Unlike the library's test helper it does not import testing, so the
// example binary can use it, and it can fail over: promote a replica, point
// the others at it, switch replication between asynchronous and synchronous.
//
// The servers are child processes that die with the program (parent-death
// signal), their data lives under os.TempDir(), and [Cluster.Close] removes
// it. Run as root, the servers run as the "postgres" OS user, because initdb
// refuses to run as root.
package pgcluster

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// ErrNoPostgres reports that the PostgreSQL server binaries were not found.
var ErrNoPostgres = errors.New("pgcluster: PostgreSQL server binaries (initdb, postgres, pg_basebackup) not found: install them (apt-get install -y postgresql) or name their directory with -pg-bin or PG_BIN")

// BinDir finds the directory of the PostgreSQL server binaries: dir if it is
// not empty, else $PG_BIN, else the newest /usr/lib/postgresql/*/bin (the
// Debian layout), else the directory of initdb on PATH.
func BinDir(dir string) (string, error) {
	has := func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "initdb"))
		return err == nil
	}
	if dir == "" {
		dir = os.Getenv("PG_BIN")
	}
	if dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w (no initdb in %s)", ErrNoPostgres, dir)
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int { return version(b) - version(a) })
	for _, d := range versions {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgres
}

// version is the major version in a /usr/lib/postgresql/N/bin path.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Options configures [Start]. The zero value is a primary and one replica
// from the binaries [BinDir] finds.
type Options struct {
	// Replicas is the number of streaming replicas. Default 1; negative
	// means none.
	Replicas int
	// BinDir is the directory of initdb, postgres and pg_basebackup.
	// Default: what [BinDir] finds.
	BinDir string
}

// Cluster is a set of PostgreSQL servers: one primary and its replicas.
// Which node is the primary changes with [Cluster.Failover].
type Cluster struct {
	// Nodes are all the servers, in a fixed order: node-1 is the first
	// primary.
	Nodes []*Node

	root string
	cred *syscall.Credential
	bin  string

	mu      sync.Mutex
	primary *Node
}

// Node is one server.
type Node struct {
	Name string // node-1, node-2, …
	Port int    // loopback TCP port, fixed across restarts
	Dir  string // data directory
	// DSN connects to this node only, whatever its role.
	DSN string

	c      *Cluster
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start initialises and starts a primary and its replicas. On error
// everything already started is stopped and removed.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	bin, err := BinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	n := opts.Replicas
	switch {
	case n == 0:
		n = 1
	case n < 0:
		n = 0
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
			return c, fmt.Errorf("pgcluster: running as root needs a postgres OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if c.root, err = os.MkdirTemp("", "sharednothing-pgcluster-"); err != nil {
		return c, err
	}
	if c.cred != nil {
		if err := os.Chown(c.root, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return c, err
		}
	}
	ports, err := FreePorts(n + 1)
	if err != nil {
		return c, err
	}
	for i, p := range ports {
		name := fmt.Sprintf("node-%d", i+1)
		c.Nodes = append(c.Nodes, &Node{Name: name, Port: p, Dir: filepath.Join(c.root, name),
			DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p), c: c})
	}
	p := c.Nodes[0]
	c.primary = p
	if err := c.run(ctx, "initdb", "-D", p.Dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return c, err
	}
	// Settings every node shares (replicas copy them with the base backup):
	// streaming replication, quick reconnects, and a replica that follows
	// a promoted peer onto its new timeline (the default, stated).
	conf := "\nlisten_addresses = '127.0.0.1'\nwal_level = replica\nfsync = off\nfull_page_writes = off\n" +
		"max_wal_senders = 10\nwal_keep_size = '256MB'\nhot_standby = on\nhot_standby_feedback = on\n" +
		"wal_receiver_status_interval = 1s\nwal_retrieve_retry_interval = 200ms\nmax_connections = 200\nshared_buffers = '32MB'\n" +
		"recovery_target_timeline = 'latest'\n"
	if err := appendFile(filepath.Join(p.Dir, "postgresql.conf"), conf+p.localConf()); err != nil {
		return c, err
	}
	if err := appendFile(filepath.Join(p.Dir, "pg_hba.conf"), "\nhost replication all 127.0.0.1/32 trust\n"); err != nil {
		return c, err
	}
	if err := p.Start(ctx); err != nil {
		return c, err
	}
	// Base backups one after another (they share the primary), then start
	// the replicas together.
	for _, r := range c.Nodes[1:] {
		if err := r.basebackup(ctx, p); err != nil {
			return c, err
		}
	}
	errs := make(chan error, n)
	for _, r := range c.Nodes[1:] {
		go func() { errs <- r.Start(ctx) }()
	}
	for range c.Nodes[1:] {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return c, err
}

// localConf is the part of postgresql.conf that differs between nodes.
func (n *Node) localConf() string {
	return fmt.Sprintf("\nport = %d\nunix_socket_directories = '%s'\n", n.Port, n.Dir)
}

// basebackup makes n a fresh streaming replica of from (n's server must
// not be running; its data directory is replaced).
func (n *Node) basebackup(ctx context.Context, from *Node) error {
	if err := os.RemoveAll(n.Dir); err != nil {
		return err
	}
	if err := n.c.run(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(from.Port), "-U", "postgres",
		"-D", n.Dir, "-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		return err
	}
	// The copied postgresql.auto.conf may carry the source's ALTER SYSTEM
	// settings (synchronous_standby_names): a replica starts clean.
	os.Remove(filepath.Join(n.Dir, "postgresql.auto.conf"))
	return appendFile(filepath.Join(n.Dir, "postgresql.conf"), n.localConf()+
		fmt.Sprintf("primary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=%s'\n", from.Port, n.Name))
}

// Primary returns the node that is currently the primary.
func (c *Cluster) Primary() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primary
}

// Replicas returns every node but the primary.
func (c *Cluster) Replicas() []*Node {
	p := c.Primary()
	var rs []*Node
	for _, n := range c.Nodes {
		if n != p {
			rs = append(rs, n)
		}
	}
	return rs
}

// PrimaryDSN is a multi-host connection string listing every node with
// target_session_attrs=read-write: a new connection goes to whichever node
// accepts writes, so clients follow a promotion without being reconfigured.
func (c *Cluster) PrimaryDSN() string {
	var hosts []string
	for _, n := range c.Nodes {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", n.Port))
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/postgres?sslmode=disable&target_session_attrs=read-write&connect_timeout=5"
}

// ReplicaDSN connects to n only while it is a standby
// (target_session_attrs=standby): once promoted, it refuses new replica
// connections.
func (n *Node) ReplicaDSN() string {
	return n.DSN + "&target_session_attrs=standby&connect_timeout=5"
}

// Close stops every server at once and removes the cluster's files. It is
// safe to call more than once.
func (c *Cluster) Close() error {
	if c == nil {
		return nil
	}
	for _, n := range c.Nodes {
		n.Kill()
	}
	if c.root != "" {
		return os.RemoveAll(c.root)
	}
	return nil
}

// Open returns a *sql.DB (pgx driver) for the node. The caller closes it.
func (n *Node) Open() (*sql.DB, error) { return sql.Open("pgx", n.DSN) }

// Start starts the node's server and waits until it accepts connections.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("pgcluster: %s already running", n.Name)
	}
	cmd := exec.Command(filepath.Join(n.c.bin, "postgres"), "-D", n.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: n.c.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgcluster: start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	n.cmd, n.exited = cmd, exited

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
			return fmt.Errorf("pgcluster: %s exited during start-up; log: %s", n.Name, n.TailLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("pgcluster: %s not ready after 30s: %v; log: %s", n.Name, err, n.TailLog())
		case <-tick.C:
		}
	}
}

// Stop shuts the server down (fast shutdown: sessions are disconnected,
// committed work is kept) and waits for it to exit. Stopping a stopped node
// does nothing.
func (n *Node) Stop() error { return n.stop(syscall.SIGINT, 30*time.Second) }

// Kill stops the server at once (immediate shutdown, as a crash of the
// machine would look to its clients) and waits for it to exit.
func (n *Node) Kill() { n.stop(syscall.SIGQUIT, 10*time.Second) }

func (n *Node) stop(sig syscall.Signal, grace time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil
	}
	syscall.Kill(-n.cmd.Process.Pid, sig)
	select {
	case <-n.exited:
	case <-time.After(grace):
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.exited
	}
	n.cmd = nil
	return nil
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

// PauseReplay freezes WAL replay on a replica until [Node.ResumeReplay],
// waiting until the pause has taken effect.
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

// SetApplyDelay sets recovery_min_apply_delay on a replica (0 turns it
// off): a steady replication lag.
func (n *Node) SetApplyDelay(ctx context.Context, d time.Duration) error {
	if err := n.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET recovery_min_apply_delay = '%dms'", d.Milliseconds())); err != nil {
		return err
	}
	return n.Exec(ctx, "SELECT pg_reload_conf()")
}

// SetSynchronous makes the primary's commits wait until a replica has
// flushed them to disk (synchronous_standby_names = '*' with
// synchronous_commit = on), or turns that off. While it is on, a commit the
// primary acknowledged is on a replica too, so promoting that replica loses
// nothing; a commit waits when no replica is connected.
func (c *Cluster) SetSynchronous(ctx context.Context, on bool) error {
	names := ""
	if on {
		names = "*"
	}
	p := c.Primary()
	if err := p.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET synchronous_standby_names = '%s'", names)); err != nil {
		return err
	}
	if err := p.Exec(ctx, "ALTER SYSTEM SET synchronous_commit = 'on'"); err != nil {
		return err
	}
	return p.Exec(ctx, "SELECT pg_reload_conf()")
}

// Failover promotes replica to be the primary (pg_promote, waiting for it)
// and points every other running replica at it; they follow it onto its new
// timeline. The old primary is left as it is (normally stopped or dead): it
// may hold commits the new primary never received, so it cannot simply
// follow; [Node.Rebuild] makes it a replica again.
func (c *Cluster) Failover(ctx context.Context, replica *Node) error {
	if err := replica.Exec(ctx, "SELECT pg_promote(true, 30)"); err != nil {
		return fmt.Errorf("pgcluster: promote %s: %w", replica.Name, err)
	}
	c.mu.Lock()
	old := c.primary
	c.primary = replica
	c.mu.Unlock()
	for _, n := range c.Nodes {
		if n == replica || n == old || !n.Running() {
			continue
		}
		if err := n.Follow(ctx, replica); err != nil {
			return err
		}
	}
	return nil
}

// MostAdvanced returns the running replica that has received the most WAL
// (pg_last_wal_receive_lsn): the one to promote, since it holds every
// commit any other replica holds, so the others can follow it. Under
// synchronous replication it holds every acknowledged commit.
func (c *Cluster) MostAdvanced(ctx context.Context) (*Node, error) {
	var best *Node
	var bestLSN uint64
	for _, n := range c.Replicas() {
		if !n.Running() {
			continue
		}
		db, err := n.Open()
		if err != nil {
			return nil, err
		}
		var lsn sql.NullString
		err = db.QueryRowContext(ctx, "SELECT COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text").Scan(&lsn)
		db.Close()
		if err != nil {
			return nil, fmt.Errorf("pgcluster: position of %s: %w", n.Name, err)
		}
		var hi, lo uint64
		if _, err := fmt.Sscanf(lsn.String, "%X/%X", &hi, &lo); err != nil {
			return nil, fmt.Errorf("pgcluster: position of %s: %q: %w", n.Name, lsn.String, err)
		}
		if v := hi<<32 | lo; best == nil || v > bestLSN {
			best, bestLSN = n, v
		}
	}
	if best == nil {
		return nil, errors.New("pgcluster: no running replica")
	}
	return best, nil
}

// Follow points a running replica at primary (primary_conninfo is
// reloadable): its WAL receiver reconnects and, with
// recovery_target_timeline = 'latest', follows a promoted primary onto its
// new timeline, provided it had not replayed past the promotion point.
func (n *Node) Follow(ctx context.Context, primary *Node) error {
	if err := n.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=%s'", primary.Port, n.Name)); err != nil {
		return fmt.Errorf("pgcluster: point %s at %s: %w", n.Name, primary.Name, err)
	}
	return n.Exec(ctx, "SELECT pg_reload_conf()")
}

// Rebuild turns n (a stopped or dead former primary, say) into a fresh
// replica of the current primary: new base backup, then start.
func (n *Node) Rebuild(ctx context.Context) error {
	n.Kill()
	if err := n.basebackup(ctx, n.c.Primary()); err != nil {
		return err
	}
	return n.Start(ctx)
}

// Running reports whether the node's server process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// WaitReplayed waits until replica has replayed the primary's current WAL
// position.
func (c *Cluster) WaitReplayed(ctx context.Context, replica *Node) error {
	p, err := c.Primary().Open()
	if err != nil {
		return err
	}
	defer p.Close()
	var lsn string
	if err := p.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return err
	}
	db, err := replica.Open()
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
			return fmt.Errorf("pgcluster: %s did not replay %s: %w", replica.Name, lsn, ctx.Err())
		case <-tick.C:
		}
	}
}

func (n *Node) logPath() string { return filepath.Join(n.c.root, n.Name+".log") }

// TailLog returns the end of the node's server log.
func (n *Node) TailLog() string {
	b, _ := os.ReadFile(n.logPath())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgcluster: %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
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

// FreePorts asks the kernel for n distinct free loopback ports (free when it
// returns; another process may still take one before it is used).
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
