package replicapin_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/internal/pgtest"
	"github.com/sharednothing/sharednothing/internal/pgwire"
	"github.com/sharednothing/sharednothing/replicapin"
)

// pauseReplay freezes the replica until the end of the test.
func pauseReplay(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	ctx := context.Background()
	if err := c.Replicas[0].PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Replicas[0].ResumeReplay(ctx); err != nil {
			t.Error(err)
		}
	})
}

// neverBehind claims every replica has replayed everything: pinning off.
type neverBehind struct{ replicapin.Positions }

func (n neverBehind) Replica(ctx context.Context, db *sql.DB) (replicapin.Position, error) {
	p, err := n.Positions.Replica(ctx, db)
	p.Offset = math.MaxUint64
	return p, err
}

// TestStaleReadPrevented is the proof: with replay paused on the replica, a
// client that wrote reads its write back, from the primary, and only
// because of the pin: the same flow with pinning off reads the old value
// from the replica.
func TestStaleReadPrevented(t *testing.T) {
	tests := []struct {
		name      string
		positions replicapin.Positions
		wantBody  string
		wantFrom  string
	}{
		{"PostgresLSN", replicapin.PostgresLSN, "new", "primary"},
		{"TimeWindow", replicapin.TimeWindow(time.Hour), "new", "primary"},
		{"pinning off", neverBehind{replicapin.PostgresLSN}, "old", "replica-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, primary, replica := pgDBs(t)
			table := kvTable(t, c, primary)
			if _, err := primary.Exec(`INSERT INTO ` + table + ` VALUES ('a', 'old')`); err != nil {
				t.Fatal(err)
			}
			waitReplayed(t, c)
			db := newDB(t, primary, replicas(replica), replicapin.Options{Positions: tt.positions, PollInterval: forever})
			base := serve(t, kvApp(db, table))
			pauseReplay(t, c)

			cl := newClient(t)
			if got := cl.do("POST", base, "/kv?k=a&v=new"); got.status != http.StatusNoContent || got.cookie == nil {
				t.Fatalf("POST: status %d, cookie %v; want 204 and a pin cookie", got.status, got.cookie)
			}
			pollNow(t, db) // the monitor has seen the paused replica since the write
			got := cl.do("GET", base, "/kv?k=a")
			if got.status != http.StatusOK || got.body != tt.wantBody || got.from != tt.wantFrom {
				t.Errorf("GET after write = %d %q from %s, want 200 %q from %s", got.status, got.body, got.from, tt.wantBody, tt.wantFrom)
			}
			// Another client, never pinned, reads the (stale) replica.
			if got := newClient(t).do("GET", base, "/kv?k=a"); got.body != "old" || got.from != "replica-1" {
				t.Errorf("unpinned GET = %q from %s, want \"old\" from replica-1", got.body, got.from)
			}
		})
	}
}

// TestUnpin: once the replica has replayed past the pin and the monitor has
// seen it, reads go to the replica and the cookie is cleared.
func TestUnpin(t *testing.T) {
	c, primary, replica := pgDBs(t)
	table := kvTable(t, c, primary)
	db := newDB(t, primary, replicas(replica), replicapin.Options{PollInterval: forever})
	base := serve(t, kvApp(db, table))
	ctx := context.Background()
	if err := c.Replicas[0].PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			c.Replicas[0].ResumeReplay(ctx)
		}
	})

	cl := newClient(t)
	cl.do("POST", base, "/kv?k=a&v=1")
	pollNow(t, db)
	if got := cl.do("GET", base, "/kv?k=a"); got.from != "primary" || got.cookie != nil {
		t.Fatalf("GET while replay paused: from %s, Set-Cookie %v; want primary and no change", got.from, got.cookie)
	}
	if got := db.Stats(); got.PinsSet != 1 || got.PinsCleared != 0 {
		t.Fatalf("stats: PinsSet %d PinsCleared %d, want 1, 0", got.PinsSet, got.PinsCleared)
	}

	if err := c.Replicas[0].ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	resumed = true
	waitReplayed(t, c)
	pollNow(t, db)
	got := cl.do("GET", base, "/kv?k=a")
	if got.body != "1" || got.from != "replica-1" {
		t.Errorf("GET after catch-up = %q from %s, want \"1\" from replica-1", got.body, got.from)
	}
	if got.cookie == nil || got.cookie.MaxAge >= 0 {
		t.Errorf("GET after catch-up: Set-Cookie %v, want the pin cleared", got.cookie)
	}
	if v := cl.pinCookie(base); v != "" {
		t.Errorf("jar still holds pin %q", v)
	}
	if got := db.Stats().PinsCleared; got != 1 {
		t.Errorf("PinsCleared = %d, want 1", got)
	}
	if got := cl.do("GET", base, "/kv?k=a"); got.from != "replica-1" || got.cookie != nil {
		t.Errorf("next GET: from %s, Set-Cookie %v; want replica-1, none", got.from, got.cookie)
	}
}

// TestAcrossInstances: two DBs sharing only the key are two app instances;
// a write through one pins the client on the other. A third with another
// key does not honour the cookie (and clears it).
func TestAcrossInstances(t *testing.T) {
	c, primary, replica := pgDBs(t)
	table := kvTable(t, c, primary)
	if _, err := primary.Exec(`INSERT INTO ` + table + ` VALUES ('a', 'old')`); err != nil {
		t.Fatal(err)
	}
	waitReplayed(t, c)
	instance := func(key []byte) (*replicapin.DB, string) {
		p, _ := c.Primary.Open()
		r, _ := c.Replicas[0].Open()
		t.Cleanup(func() { p.Close(); r.Close() })
		db := newDB(t, p, replicas(r), replicapin.Options{Key: key, PollInterval: forever})
		return db, serve(t, kvApp(db, table))
	}
	a, baseA := instance(testKey)
	b, baseB := instance(testKey)
	other, baseOther := instance([]byte("another key, 32 bytes or longer!"))
	pauseReplay(t, c)

	cl := newClient(t)
	cl.do("POST", baseA, "/kv?k=a&v=new")
	pollNow(t, a, b, other)
	// httptest servers share 127.0.0.1, and cookies ignore ports, so the
	// jar sends A's pin to B and to the third instance alike.
	if got := cl.do("GET", baseB, "/kv?k=a"); got.body != "new" || got.from != "primary" {
		t.Errorf("GET on instance B = %q from %s, want \"new\" from primary", got.body, got.from)
	}
	got := cl.do("GET", baseOther, "/kv?k=a")
	if got.body != "old" || got.from != "replica-1" {
		t.Errorf("GET on an instance with another key = %q from %s, want \"old\" from replica-1", got.body, got.from)
	}
	if got.cookie == nil || got.cookie.MaxAge >= 0 {
		t.Errorf("instance with another key: Set-Cookie %v, want the foreign cookie cleared", got.cookie)
	}
	_ = replica
}

// TestConcurrentReadYourWrites runs many clients at once, each writing and
// reading back, against a replica that lags by a steady 50 ms with a live
// monitor: no client may ever read an older value than it wrote.
func TestConcurrentReadYourWrites(t *testing.T) {
	c, primary, replica := pgDBs(t)
	table := kvTable(t, c, primary)
	ctx := context.Background()
	if err := c.Replicas[0].SetApplyDelay(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Replicas[0].SetApplyDelay(ctx, 0); err != nil {
			t.Error(err)
		}
		waitReplayed(t, c)
	})
	db := newDB(t, primary, replicas(replica), replicapin.Options{PollInterval: 5 * time.Millisecond})
	base := serve(t, kvApp(db, table))

	const clients, rounds = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for i := range clients {
		wg.Go(func() {
			cl := newClient(t)
			for j := range rounds {
				v := fmt.Sprint(j)
				if got := cl.do("POST", base, fmt.Sprintf("/kv?k=c%d&v=%s", i, v)); got.status != http.StatusNoContent {
					errs <- fmt.Errorf("client %d: POST = %d %s", i, got.status, got.body)
					return
				}
				for range 3 {
					if got := cl.do("GET", base, fmt.Sprintf("/kv?k=c%d", i)); got.body != v {
						errs <- fmt.Errorf("client %d: GET = %d %q from %s, want %q", i, got.status, got.body, got.from, v)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := db.Stats()
	t.Logf("primary reads %d, replica reads %d, pins set %d, cleared %d", st.PrimaryReads, st.Replicas[0].Reads, st.PinsSet, st.PinsCleared)
	if st.PinsSet != clients*rounds {
		t.Errorf("PinsSet = %d, want %d", st.PinsSet, clients*rounds)
	}
}

// waitUp polls until the DB sees its replica up (a restarted server takes a
// moment to reconnect and replay), or fails the test after 30 s.
func waitUp(t *testing.T, db *replicapin.DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pollNow(t, db)
		st := db.Stats().Replicas[0]
		if st.Up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not up after 30 s: %v", st.Err)
		}
	}
}

// TestReplicaStopped: a replica that goes away costs a retry, not an error;
// once the monitor notices, reads go straight to the primary; when it is
// back, reads return to it.
func TestReplicaStopped(t *testing.T) {
	c, primary, replica := pgDBs(t)
	table := kvTable(t, c, primary)
	if _, err := primary.Exec(`INSERT INTO ` + table + ` VALUES ('a', '1')`); err != nil {
		t.Fatal(err)
	}
	waitReplayed(t, c)
	db := newDB(t, primary, replicas(replica), replicapin.Options{PollInterval: forever})
	base := serve(t, kvApp(db, table))
	pollNow(t, db)
	cl := newClient(t)
	if got := cl.do("GET", base, "/kv?k=a"); got.from != "replica-1" {
		t.Fatalf("GET before the stop: from %s, want replica-1", got.from)
	}

	r := c.Replicas[0]
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	running := false
	t.Cleanup(func() {
		if !running {
			r.Start(context.Background())
		}
		waitReplayed(t, c)
	})
	// The monitor has not polled since: Reader still picks the replica,
	// the query fails, and Read retries on the primary.
	if got := cl.do("GET", base, "/kv?k=a"); got.status != http.StatusOK || got.body != "1" || got.from != "primary" {
		t.Errorf("GET just after the stop = %d %q from %s, want 200 \"1\" from primary", got.status, got.body, got.from)
	}
	if got := db.Stats().Retries; got != 1 {
		t.Errorf("Retries = %d, want 1", got)
	}
	pollNow(t, db)
	st := db.Stats()
	if st.Replicas[0].Up || st.Replicas[0].Err == "" {
		t.Errorf("replica stats after a poll: Up %v, Err %v; want down with an error", st.Replicas[0].Up, st.Replicas[0].Err)
	}
	if got := cl.do("GET", base, "/kv?k=a"); got.status != http.StatusOK || got.from != "primary" {
		t.Errorf("GET with the replica down = %d from %s, want 200 from primary", got.status, got.from)
	}
	if got := db.Stats().Retries; got != 1 {
		t.Errorf("Retries = %d, want still 1: a replica known down is not tried", got)
	}

	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	running = true
	waitUp(t, db)
	if got := cl.do("GET", base, "/kv?k=a"); got.status != http.StatusOK || got.from != "replica-1" {
		t.Errorf("GET after the restart = %d from %s, want 200 from replica-1", got.status, got.from)
	}
}

// TestKillReplicaUnderLoad: stopping and restarting the replica while
// clients read and write costs zero failed requests, and the replica
// serves reads before the stop and again after the restart.
//
// The phases end on what they are about (replica reads), not on request
// counts: counting requests once let the first phase end before the
// monitor had seen the replica, with every read on the primary ("0 before
// the stop").
func TestKillReplicaUnderLoad(t *testing.T) {
	c, primary, replica := pgDBs(t)
	table := kvTable(t, c, primary)
	db := newDB(t, primary, replicas(replica), replicapin.Options{PollInterval: 20 * time.Millisecond})
	base := serve(t, kvApp(db, table))
	r := c.Replicas[0]
	t.Cleanup(func() {
		r.Start(context.Background()) // in case the test failed while it was down
		waitReplayed(t, c)
	})
	waitUp(t, db)

	// Two clients write every fifth request (and are pinned for a while);
	// two only read, so their reads go to the replica while it is up.
	const workers = 4
	var done atomic.Int64
	var failed atomic.Int64
	stop := make(chan struct{})
	progress := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			cl := newClient(t)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				method, path := "GET", fmt.Sprintf("/kv?k=w%d", i)
				if i%2 == 0 && j%5 == 0 {
					method, path = "POST", fmt.Sprintf("/kv?k=w%d&v=%d", i, j)
				}
				if got := cl.do(method, base, path); got.status >= 500 {
					failed.Add(1)
					t.Errorf("%s %s = %d %s", method, path, got.status, got.body)
				}
				done.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	replicaReads := func() uint64 { return db.Stats().Replicas[0].Reads }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for !cond() {
			select {
			case <-progress:
			case <-timeout:
				t.Fatalf("after 60 s: still waiting for %s", what)
			}
		}
	}
	waitFor("20 replica reads", func() bool { return replicaReads() >= 20 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	n := done.Load()
	waitFor("200 requests with the replica down", func() bool { return done.Load() >= n+200 })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUp(t, db)
	after := replicaReads()
	waitFor("20 more replica reads after the restart", func() bool { return replicaReads() >= after+20 })

	st := db.Stats()
	t.Logf("%d requests, %d failed; replica reads %d, primary reads %d, retries %d", done.Load(), failed.Load(), st.Replicas[0].Reads, st.PrimaryReads, st.Retries)
}

// TestPrimaryDown: with the primary stopped, a write fails with the
// handler's own error (not one from the middleware) and pins nothing, so
// the writer keeps reading from the replica like everyone else.
func TestPrimaryDown(t *testing.T) {
	c, primary, replica := pgDBs(t)
	table := kvTable(t, c, primary)
	if _, err := primary.Exec(`INSERT INTO ` + table + ` VALUES ('a', '1')`); err != nil {
		t.Fatal(err)
	}
	waitReplayed(t, c)
	var log errorLog
	db := newDB(t, primary, replicas(replica), replicapin.Options{PollInterval: forever, ErrorHandler: log.handle})
	base := serve(t, kvApp(db, table))
	pollNow(t, db)

	if err := c.Primary.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Primary.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitReplayed(t, c)
	})
	pollNow(t, db)
	if st := db.Stats().Primary; st.Up || st.Err == "" {
		t.Errorf("primary stats: Up %v, Err %q; want down", st.Up, st.Err)
	}

	writer := newClient(t)
	got := writer.do("POST", base, "/kv?k=a&v=2")
	if got.status != http.StatusServiceUnavailable || got.cookie != nil {
		t.Errorf("POST with the primary down = %d, cookie %v; want the handler's 503 and no pin", got.status, got.cookie)
	}
	if errs := log.all(); len(errs) != 0 {
		t.Errorf("ErrorHandler got %v, want nothing", errs)
	}
	if st := db.Stats(); st.FailedWrites != 1 || st.PinsSet != 0 {
		t.Errorf("FailedWrites %d, PinsSet %d; want 1, 0", st.FailedWrites, st.PinsSet)
	}
	for _, cl := range []*client{writer, newClient(t)} {
		if got := cl.do("GET", base, "/kv?k=a"); got.status != http.StatusOK || got.body != "1" || got.from != "replica-1" {
			t.Errorf("GET = %d %q from %s, want 200 \"1\" from replica-1", got.status, got.body, got.from)
		}
	}
}

// TestSynchronousCommitOff: with synchronous_commit = off the commit call
// returns before its WAL is written, so pg_current_wal_lsn() may still be
// short of it; the position PostgresLSN reads is never short. Checked
// against the commit record's end as pg_walinspect reports it.
func TestSynchronousCommitOff(t *testing.T) {
	c, primary, _ := pgDBs(t)
	table := kvTable(t, c, primary)
	ctx := context.Background()
	if _, err := primary.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err != nil {
		t.Fatal(err)
	}
	conn, err := primary.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	holes := 0
	for i := range 20 {
		var start string
		var xid int64
		if err := conn.QueryRowContext(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&start); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(ctx,
			`INSERT INTO `+table+` VALUES ($1, 'x') RETURNING txid_current()`, fmt.Sprint(i)).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		// Read right after the commit returned, as the middleware would.
		pos, err := replicapin.PostgresLSN.Primary(ctx, primary)
		if err != nil {
			t.Fatal(err)
		}
		var written string
		if err := primary.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&written); err != nil {
			t.Fatal(err)
		}
		// A synchronous commit in another session flushes the WAL up to
		// and past ours, so pg_walinspect can read our commit record.
		if _, err := primary.ExecContext(ctx, `INSERT INTO `+table+` VALUES ($1, 'flush')`, fmt.Sprint("flush", i)); err != nil {
			t.Fatal(err)
		}
		var commitEnd string
		err = primary.QueryRowContext(ctx, `SELECT end_lsn::text FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn())
			WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' AND xid::text::bigint = $2`, start, xid%(1<<32)).Scan(&commitEnd)
		if err != nil {
			t.Fatalf("commit record of xid %d: %v", xid, err)
		}
		var ok, writeOK bool
		if err := primary.QueryRowContext(ctx, "SELECT $1::pg_lsn >= $2::pg_lsn, $3::pg_lsn >= $2::pg_lsn",
			fmt.Sprintf("%X/%X", pos.Offset>>32, uint32(pos.Offset)), commitEnd, written).Scan(&ok, &writeOK); err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("round %d: PostgresLSN position %v is before the commit record's end %s", i, pos, commitEnd)
		}
		if !writeOK {
			holes++
			t.Logf("round %d: pg_current_wal_lsn() %s was before the commit's end %s", i, written, commitEnd)
		}
	}
	// The control: the write position does show the hole (the WAL writer
	// flushes only every wal_writer_delay, 200 ms), so this test would
	// catch a PostgresLSN that used it.
	if holes == 0 {
		t.Errorf("pg_current_wal_lsn() was never behind a commit in 20 rounds; the test no longer shows the hole")
	}
}

// TestFailover promotes a replica on a cluster of its own (a promotion
// cannot be undone), with the primary reached through a multi-host
// connection string as an app would: a pin taken on the old timeline reads
// from the new primary, the promoted node is no longer read from as a
// replica, and the other replica, once re-pointed at the new primary and
// on its timeline, serves reads again, pinned ones included.
func TestFailover(t *testing.T) {
	pgtest.Need(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgtest.Start(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	oldPrimary, promoted, other := c.Primary, c.Replicas[0], c.Replicas[1]
	open := func(dsn string) *sql.DB {
		db, err := sql.Open(pgwire.DriverName, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	primary := open(pgtest.MultiHostDSN(oldPrimary, promoted))
	r1, r2 := open(promoted.DSN), open(other.DSN)
	db := newDB(t, primary, replicas(r1, r2), replicapin.Options{PollInterval: forever})
	table := "kv_failover"
	if _, err := primary.ExecContext(ctx, `CREATE TABLE `+table+` (k text PRIMARY KEY, v text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	base := serve(t, kvApp(db, table))
	caughtUp := func(primary *pgtest.Node, rs ...*pgtest.Node) {
		t.Helper()
		for _, r := range rs {
			if err := r.WaitReplayed(ctx, primary); err != nil {
				t.Fatal(err)
			}
		}
		pollNow(t, db)
	}

	// Before: a first value is on both replicas; then, with replica-2's
	// replay paused, a client writes on timeline 1 and is pinned there
	// (replica-2 has not replayed its write, so no response clears the pin).
	if got := newClient(t).do("POST", base, "/kv?k=a&v=1"); got.status != http.StatusNoContent {
		t.Fatalf("POST = %d %s", got.status, got.body)
	}
	caughtUp(oldPrimary, promoted, other)
	if got := newClient(t).do("GET", base, "/kv?k=a"); got.body != "1" || got.from == "primary" {
		t.Fatalf("GET before the failover = %q from %s, want \"1\" from a replica", got.body, got.from)
	}
	if err := other.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	old := newClient(t)
	if got := old.do("POST", base, "/kv?k=a&v=2"); got.status != http.StatusNoContent || got.cookie == nil {
		t.Fatalf("POST = %d, cookie %v; want 204 and a pin", got.status, got.cookie)
	}
	oldPin, err := db.OpenPin(old.pinCookie(base), time.Now())
	if err != nil || oldPin.Pos.Timeline != 1 {
		t.Fatalf("pin %+v, %v; want one on timeline 1", oldPin, err)
	}
	caughtUp(oldPrimary, promoted) // the write reaches the node to be promoted

	// The primary dies and replica-1 is promoted; the other replica still
	// follows the dead primary on timeline 1.
	oldPrimary.Kill()
	if err := promoted.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool's idle connections to the dead primary fail once each (the
	// poll that finds one reports the primary down), then the multi-host
	// connection string reaches the promoted node.
	var st replicapin.Stats
	for deadline := time.Now().Add(30 * time.Second); ; {
		pollNow(t, db)
		if st = db.Stats(); st.Primary.Up && st.Primary.Position.Timeline == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("primary after the promotion: %+v, want up on timeline 2", st.Primary)
		}
	}
	if st.Replicas[0].Up || !strings.Contains(st.Replicas[0].Err, replicapin.ErrNotReplica.Error()) {
		t.Errorf("promoted replica-1: Up %v, Err %q; want down, not a replica", st.Replicas[0].Up, st.Replicas[0].Err)
	}
	if st.Replicas[1].Up {
		t.Errorf("replica-2 on the old timeline is up: %+v", st.Replicas[1])
	}
	r1Reads := st.Replicas[0].Reads
	for _, cl := range []*client{old, newClient(t)} {
		if got := cl.do("GET", base, "/kv?k=a"); got.status != http.StatusOK || got.body != "2" || got.from != "primary" {
			t.Errorf("GET after the promotion = %d %q from %s, want 200 \"2\" from primary", got.status, got.body, got.from)
		}
	}

	// A write goes to the new primary and pins on timeline 2.
	writer := newClient(t)
	if got := writer.do("POST", base, "/kv?k=b&v=2"); got.status != http.StatusNoContent {
		t.Fatalf("POST after the promotion = %d %s", got.status, got.body)
	}
	if p, err := db.OpenPin(writer.pinCookie(base), time.Now()); err != nil || p.Pos.Timeline != 2 {
		t.Fatalf("pin after the promotion %+v, %v; want one on timeline 2", p, err)
	}

	// replica-2 is re-pointed at the new primary; once it is on timeline 2
	// and has replayed the write, it serves unpinned and pinned reads,
	// while the pin from timeline 1 still reads from the primary.
	if err := other.Follow(ctx, promoted); err != nil {
		t.Fatal(err)
	}
	if err := other.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	caughtUp(promoted, other)
	deadline := time.Now().Add(30 * time.Second)
	for !db.Stats().Replicas[1].Up {
		if time.Now().After(deadline) {
			t.Fatalf("re-pointed replica-2 not up after 30 s: %+v", db.Stats().Replicas[1])
		}
		caughtUp(promoted, other)
	}
	for _, tt := range []struct {
		name string
		cl   *client
		k    string
		body string
		from string
	}{
		{"pinned on timeline 2", writer, "b", "2", "replica-2"},
		{"unpinned", newClient(t), "b", "2", "replica-2"},
		{"pinned on timeline 1", old, "a", "2", "primary"},
	} {
		if got := tt.cl.do("GET", base, "/kv?k="+tt.k); got.body != tt.body || got.from != tt.from {
			t.Errorf("%s: GET = %q from %s, want %q from %s", tt.name, got.body, got.from, tt.body, tt.from)
		}
	}
	if got := db.Stats().Replicas[0].Reads; got != r1Reads {
		t.Errorf("the promoted node served %d reads as a replica after its promotion, want 0", got-r1Reads)
	}
}
