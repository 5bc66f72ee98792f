package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

var cluster *Cluster

func TestMain(m *testing.M) { Run(m, 1, &cluster) }

func open(t *testing.T, n *Node) *sql.DB {
	t.Helper()
	db, err := n.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB, id int) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t WHERE id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReplication(t *testing.T) {
	c := Need(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	primary, replica := open(t, c.Primary), open(t, c.Replicas[0])
	if _, err := primary.Exec("CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}

	// A row written on the primary appears on the replica.
	if _, err := primary.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplayed(ctx, c.Replicas[0]); err != nil {
		t.Fatal(err)
	}
	if got := count(t, replica, 1); got != 1 {
		t.Fatalf("replica sees %d rows with id 1, want 1", got)
	}

	// With replay paused it does not, until replay resumes.
	if err := c.Replicas[0].PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if got := count(t, replica, 2); got != 0 {
		t.Fatalf("paused replica sees %d rows with id 2, want 0", got)
	}
	if err := c.Replicas[0].ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplayed(ctx, c.Replicas[0]); err != nil {
		t.Fatal(err)
	}
	if got := count(t, replica, 2); got != 1 {
		t.Fatalf("resumed replica sees %d rows with id 2, want 1", got)
	}
}

func TestApplyDelay(t *testing.T) {
	c := Need(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := c.Replicas[0]
	if err := r.SetApplyDelay(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	defer r.SetApplyDelay(ctx, 0)
	var got string
	if err := open(t, r).QueryRow("SHOW recovery_min_apply_delay").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "2s" {
		t.Errorf("got recovery_min_apply_delay %q, want 2s", got)
	}
}

func TestStopAndRestartReplica(t *testing.T) {
	c := Need(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := c.Replicas[0]
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	db := open(t, r)
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("stopped replica still answers")
	}
	if _, err := open(t, c.Primary).Exec("CREATE TABLE IF NOT EXISTS t (id int); INSERT INTO t VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplayed(ctx, r); err != nil {
		t.Fatal(err)
	}
	db2 := open(t, r)
	if got := count(t, db2, 3); got != 1 {
		t.Fatalf("restarted replica sees %d rows with id 3, want 1", got)
	}
}

func BenchmarkStart(b *testing.B) {
	if err := Available(); err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		c, err := Start(context.Background(), 1)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// TestCleanupOnPanic runs a child test process that starts its own cluster
// and panics; the servers must die with it, and the next Start sweeps its
// data directory away.
func TestCleanupOnPanic(t *testing.T) {
	if os.Getenv("PGTEST_PANIC_CHILD") == "1" {
		c, err := Start(context.Background(), 1)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(3)
		}
		fmt.Printf("CLUSTER %s %d %d\n", c.root, c.Primary.Port, c.Replicas[0].Port)
		panic("test panicked with a cluster running")
	}
	Need(t, cluster)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCleanupOnPanic$")
	cmd.Env = append(os.Environ(), "PGTEST_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child did not fail: %s", out)
	}
	var root string
	var p1, p2 int
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "CLUSTER ") {
			fmt.Sscanf(line, "CLUSTER %s %d %d", &root, &p1, &p2)
		}
	}
	if root == "" {
		t.Fatalf("child never started its cluster: %s", out)
	}
	// The postmasters get SIGKILL from the kernel when the child exits;
	// wait for their ports to close.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, port := range []int{p1, p2} {
		for {
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err != nil {
				break
			}
			conn.Close()
			select {
			case <-ctx.Done():
				t.Fatalf("server on port %d still running after its test process panicked", port)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	sweepStale()
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("data directory %s of the dead cluster was not swept: %v", root, err)
	}
}
