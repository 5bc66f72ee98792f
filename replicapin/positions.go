package replicapin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors a [Positions] reports for a server in the wrong role. A replica
// whose poll fails with either is marked down, like an unreachable one.
var (
	// ErrNotReplica means a configured replica is not replaying a primary's
	// changes (for PostgreSQL: pg_is_in_recovery() is false), usually
	// because it was promoted. Its data may have diverged, so it is not read
	// from.
	ErrNotReplica = errors.New("replicapin: replica is not in recovery (promoted?)")

	// ErrNotPrimary means the configured primary is in recovery: it is a
	// replica, so its position says nothing about what was written.
	ErrNotPrimary = errors.New("replicapin: primary is in recovery (it is a replica)")
)

// Position is a point in the primary's history of commits. Positions on one
// timeline are ordered by Offset; positions on different timelines are not
// comparable, so a replica on another timeline never covers a pin.
type Position struct {
	// Timeline names the history Offset counts along; it changes when a
	// replica is promoted to be the new primary (PostgreSQL's timeline ID).
	Timeline uint32

	// Offset grows with every commit: a WAL LSN for [PostgresLSN], Unix
	// nanoseconds for [TimeWindow].
	Offset uint64
}

// Covers reports whether a server that has replayed up to p shows
// everything the primary had committed at q: both are on the same timeline
// and p.Offset is at least q.Offset. A position on another timeline never
// covers q, in either direction: after a failover, a pin taken on the old
// primary is served by the new primary until it expires.
func (p Position) Covers(q Position) bool {
	return p.Timeline == q.Timeline && p.Offset >= q.Offset
}

// String formats p like a PostgreSQL LSN followed by its timeline,
// "0/3000060@1". [ParsePosition] reads it back.
func (p Position) String() string {
	return fmt.Sprintf("%X/%X@%d", p.Offset>>32, uint32(p.Offset), p.Timeline)
}

// MarshalText encodes p as [Position.String] does, so that Stats and
// messages carrying positions encode them readably in JSON.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes the form [Position.MarshalText] writes.
func (p *Position) UnmarshalText(b []byte) error {
	q, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// ParsePosition parses the form [Position.String] writes: an LSN, "@" and a
// decimal timeline, as in "16/B374D848@2".
func ParsePosition(s string) (Position, error) {
	lsn, tl, ok := strings.Cut(s, "@")
	if !ok || tl == "" || len(tl) > 10 || strings.TrimLeft(tl, "0123456789") != "" {
		return Position{}, fmt.Errorf("replicapin: invalid position %q", s)
	}
	t, err := strconv.ParseUint(tl, 10, 32)
	if err != nil {
		return Position{}, fmt.Errorf("replicapin: invalid position %q", s)
	}
	off, err := parseLSN(lsn)
	if err != nil {
		return Position{}, fmt.Errorf("replicapin: invalid position %q", s)
	}
	return Position{Timeline: uint32(t), Offset: off}, nil
}

// Positions reads positions from the primary and the replicas; it defines
// what a pin means. [PostgresLSN] and [TimeWindow] implement it. A DB calls
// Primary once per writing request and every PollInterval, and Replica every
// PollInterval for each replica, from several goroutines at once.
type Positions interface {
	// Primary returns the primary's current position. It is called after
	// the request's transactions have committed, and what it returns must
	// be at or past the end of each of them.
	Primary(ctx context.Context, primary *sql.DB) (Position, error)

	// Replica returns the position up to which replica has applied the
	// primary's changes: everything the primary committed at or before it
	// is visible on replica. An error means replica must not be used now.
	Replica(ctx context.Context, replica *sql.DB) (Position, error)
}

// PostgresLSN pins by PostgreSQL WAL position. On the primary it reads
// pg_current_wal_insert_lsn() and the timeline of the WAL being written; on
// a replica, pg_last_wal_replay_lsn(), pg_is_in_recovery() and the timeline
// it receives (pg_stat_wal_receiver, or its last restart point's when the
// WAL receiver is not running).
//
// It uses the insert position rather than pg_current_wal_lsn(), the write
// position: with synchronous_commit = off a transaction returns before its
// commit record is written, so the write position can still be short of a
// commit the client has already seen succeed.
//
// The database role needs the pg_monitor privileges on the replicas (for
// pg_stat_wal_receiver); without them the timeline falls back to the
// restart point's, which lags after a failover and then keeps the replica
// unused until its next restart point.
var PostgresLSN Positions = postgresLSN{}

type postgresLSN struct{}

// A CASE keeps pg_current_wal_insert_lsn() (which fails during recovery)
// from running on a server that turns out to be a replica. The timeline is
// the first eight hex digits of the WAL file name; PostgreSQL names it
// after the timeline being inserted on, which is current right after a
// promotion, unlike pg_control_checkpoint().
const (
	pgPrimaryQuery = `SELECT l::text, pg_walfile_name(l) FROM (SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn() END AS l) s`
	pgReplicaQuery = `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))`
)

func (postgresLSN) Primary(ctx context.Context, db *sql.DB) (Position, error) {
	var lsn, file sql.NullString
	if err := db.QueryRowContext(ctx, pgPrimaryQuery).Scan(&lsn, &file); err != nil {
		return Position{}, err
	}
	if !lsn.Valid {
		return Position{}, ErrNotPrimary
	}
	off, err := parseLSN(lsn.String)
	if err != nil {
		return Position{}, err
	}
	if len(file.String) < 8 {
		return Position{}, fmt.Errorf("replicapin: unexpected WAL file name %q", file.String)
	}
	tli, err := strconv.ParseUint(file.String[:8], 16, 32)
	if err != nil {
		return Position{}, fmt.Errorf("replicapin: unexpected WAL file name %q", file.String)
	}
	return Position{Timeline: uint32(tli), Offset: off}, nil
}

func (postgresLSN) Replica(ctx context.Context, db *sql.DB) (Position, error) {
	var (
		inRecovery bool
		lsn        sql.NullString
		tli        sql.NullInt64
	)
	if err := db.QueryRowContext(ctx, pgReplicaQuery).Scan(&inRecovery, &lsn, &tli); err != nil {
		return Position{}, err
	}
	if !inRecovery {
		return Position{}, ErrNotReplica
	}
	if !lsn.Valid || !tli.Valid || tli.Int64 < 0 || tli.Int64 > 1<<32-1 {
		return Position{}, errors.New("replicapin: replica has not replayed any WAL yet")
	}
	off, err := parseLSN(lsn.String)
	if err != nil {
		return Position{}, err
	}
	return Position{Timeline: uint32(tli.Int64), Offset: off}, nil
}

// parseLSN parses a PostgreSQL LSN in its text form, two hexadecimal
// numbers of at most eight digits separated by a slash ("16/B374D848"), into
// one 64-bit offset.
func parseLSN(s string) (uint64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] != '/' {
			continue
		}
		hi, lo := s[:i], s[i+1:]
		if !isHex8(hi) || !isHex8(lo) {
			break
		}
		h, _ := strconv.ParseUint(hi, 16, 32)
		l, _ := strconv.ParseUint(lo, 16, 32)
		return h<<32 | l, nil
	}
	return 0, fmt.Errorf("replicapin: invalid LSN %q", s)
}

// isHex8 reports whether s is one to eight hexadecimal digits.
func isHex8(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// TimeWindow pins a client to the primary for d after each write, for
// databases that expose no replication position; it is what Rails'
// DatabaseSelector (2 s) and django-multidb-router (15 s) do. It assumes
// every replica is at most d behind, which nothing checks: when a replica
// lags by more, pinned clients read stale data once the window closes.
//
// It queries the primary for nothing. A replica's position is the time of
// its last successful poll (a "SELECT 1") minus d, so a pin ends up to one
// PollInterval after d, and never later than MaxPin. Positions are
// wall-clock times compared across app instances, so their clocks must
// agree to well within d.
//
// TimeWindow panics if d is not positive.
func TimeWindow(d time.Duration) Positions {
	if d <= 0 {
		panic("replicapin: TimeWindow: window must be positive")
	}
	return timeWindow{d: d}
}

type timeWindow struct{ d time.Duration }

func (w timeWindow) Primary(ctx context.Context, _ *sql.DB) (Position, error) {
	return Position{Offset: uint64(time.Now().UnixNano())}, nil
}

func (w timeWindow) Replica(ctx context.Context, db *sql.DB) (Position, error) {
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return Position{}, err
	}
	return Position{Offset: uint64(time.Now().Add(-w.d).UnixNano())}, nil
}
