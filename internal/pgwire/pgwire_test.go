package pgwire_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/internal/pgtest"
	"github.com/sharednothing/sharednothing/internal/pgwire"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Run(m, 0, &cluster) }

func open(t *testing.T) *sql.DB {
	t.Helper()
	c := pgtest.Need(t, cluster)
	db, err := sql.Open(pgwire.DriverName, c.Primary.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRoundTrip(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 13, 4, 5, 123456000, time.UTC)
	var (
		i   int64
		f   float64
		b   bool
		s   string
		raw []byte
		ts  time.Time
		nul sql.NullString
	)
	err := db.QueryRowContext(ctx, `SELECT $1::int8, $2::float8, $3::bool, $4::text, $5::bytea, $6::timestamptz, NULL::text`,
		int64(-42), 2.5, true, "it's $1 \"quoted\" ünï", []byte{0, 1, 0xff}, now).Scan(&i, &f, &b, &s, &raw, &ts, &nul)
	if err != nil {
		t.Fatal(err)
	}
	if i != -42 || f != 2.5 || !b || s != "it's $1 \"quoted\" ünï" || !bytes.Equal(raw, []byte{0, 1, 0xff}) || !ts.Equal(now) || nul.Valid {
		t.Errorf("got %d %v %v %q %x %v %v", i, f, b, s, raw, ts, nul)
	}
}

func TestExecTxAndErrors(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS pgwire_t (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO pgwire_t VALUES ($1, $2), ($3, $4)`, 1, "a", 2, "b")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Errorf("RowsAffected = %d, want 2", n)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pgwire_t`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after rollback: count %d, err %v; want 0, nil", n, err)
	}
	_, err = db.ExecContext(ctx, `SELECT * FROM no_such_table`)
	var pe *pgwire.Error
	if !errors.As(err, &pe) || pe.Code != "42P01" {
		t.Errorf("got %v, want a *pgwire.Error with SQLSTATE 42P01", err)
	}
	// The connection is still usable after a server error.
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancelBreaksOnlyThatConn(t *testing.T) {
	db := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := db.ExecContext(ctx, `SELECT pg_sleep(10)`)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	var one int
	if err := db.QueryRowContext(context.Background(), `SELECT 1`).Scan(&one); err != nil || one != 1 {
		t.Fatalf("after a cancelled query: %d, %v", one, err)
	}
}

func TestListenNotify(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	c, err := pgwire.Connect(ctx, cluster.Primary.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `LISTEN pgwire_chan`, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `SELECT pg_notify('pgwire_chan', $1)`, "hello"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := c.WaitForNotification(wctx)
	if err != nil || n.Channel != "pgwire_chan" || n.Payload != "hello" {
		t.Fatalf("got %+v, %v", n, err)
	}
}

func TestTargetSessionAttrs(t *testing.T) {
	c := pgtest.Need(t, cluster)
	dsn := strings.Replace(c.Primary.DSN, "127.0.0.1:", "127.0.0.1:1,127.0.0.1:", 1) + "&target_session_attrs=read-write&connect_timeout=2"
	conn, err := pgwire.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("multi-host DSN with a dead first host: %v", err)
	}
	conn.Close()
}

func TestBindRejectsMismatchedArgs(t *testing.T) {
	db := open(t)
	if _, err := db.ExecContext(context.Background(), `SELECT $2::int`, 1); err == nil {
		t.Error("query using $2 with one argument was accepted")
	}
}
