package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The schema is the same on PostgreSQL and SQLite except for the key
// column; times are Unix milliseconds so that both drivers scan them alike.
const (
	schemaPostgres = `
CREATE TABLE IF NOT EXISTS notes (
	id         BIGSERIAL PRIMARY KEY,
	owner      TEXT NOT NULL,
	body       TEXT NOT NULL,
	created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_owner ON notes (owner, id);
CREATE TABLE IF NOT EXISTS photos (
	id         BIGSERIAL PRIMARY KEY,
	owner      TEXT NOT NULL,
	file       TEXT NOT NULL,
	title      TEXT NOT NULL,
	width      INTEGER NOT NULL,
	height     INTEGER NOT NULL,
	created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS photos_owner ON photos (owner, id);
ALTER TABLE photos ADD COLUMN IF NOT EXISTS bytes BIGINT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS writes (
	owner      TEXT NOT NULL,
	key        TEXT NOT NULL,
	result     TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS logouts (
	owner TEXT PRIMARY KEY,
	at_us BIGINT NOT NULL
);`

	schemaSQLite = `
CREATE TABLE IF NOT EXISTS notes (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	owner      TEXT NOT NULL,
	body       TEXT NOT NULL,
	created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_owner ON notes (owner, id);
CREATE TABLE IF NOT EXISTS photos (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	owner      TEXT NOT NULL,
	file       TEXT NOT NULL,
	title      TEXT NOT NULL,
	width      INTEGER NOT NULL,
	height     INTEGER NOT NULL,
	created_ms INTEGER NOT NULL,
	bytes      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS photos_owner ON photos (owner, id);
CREATE TABLE IF NOT EXISTS writes (
	owner      TEXT NOT NULL,
	key        TEXT NOT NULL,
	result     TEXT NOT NULL,
	created_ms INTEGER NOT NULL,
	PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS logouts (
	owner TEXT PRIMARY KEY,
	at_us INTEGER NOT NULL
);`
)

// dbTimeout bounds every query, so a database that stops answering turns
// into a clean 503 instead of a hung request.
const dbTimeout = 3 * time.Second

// errUnavailable marks database failures; handlers answer them with 503.
var errUnavailable = errors.New("database unavailable")

// migrate creates the tables. On PostgreSQL several instances may start at
// once, so the DDL runs under a transaction-scoped advisory lock.
func migrate(ctx context.Context, db *sql.DB, postgres bool) error {
	if !postgres {
		_, err := db.ExecContext(ctx, schemaSQLite)
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7461)"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, schemaPostgres); err != nil {
		return err
	}
	return tx.Commit()
}

// note is one row of notes.
type note struct {
	ID      int64
	Body    string
	Created time.Time
}

// photo is one row of photos.
type photo struct {
	ID            int64
	Owner         string
	File          string // name inside the uploads directory
	Title         string
	Width, Height int
	Bytes         int64 // size of the original
	Created       time.Time
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, errUnavailable, err)
}

// errQuota reports an upload that would take its owner past the quota.
var errQuota = errors.New("upload quota exceeded")

// errNoPhoto reports a delete of a photo that does not exist or is not the
// user's.
var errNoPhoto = errors.New("no such photo of this user")

// once runs write in a transaction that also records (owner, key) in the
// writes table, whose primary key makes the pair unique: a request retried
// with the same idempotency key (after a lost response, a killed instance)
// finds the record and does not write again. It returns done = true when the
// key had already been used, by this request's first attempt or by a
// concurrent one that committed first; write did not run then. An empty key
// always writes.
//
// ON CONFLICT DO NOTHING waits for a concurrent transaction holding the
// same key: if that one commits, this is a replay; if it rolls back (its
// instance died before committing), this one writes.
func once(ctx context.Context, db *sql.DB, owner, key, what string, write func(context.Context, *sql.Tx) error) (done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, unavailable(what, err)
	}
	defer tx.Rollback()
	if key != "" {
		var got string
		err := tx.QueryRowContext(ctx, "INSERT INTO writes (owner, key, result, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING key",
			owner, key, what, time.Now().UnixMilli()).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return true, nil
		}
		if err != nil {
			return false, unavailable(what, err)
		}
	}
	if err := write(ctx, tx); err != nil {
		if errors.Is(err, errQuota) || errors.Is(err, errNoPhoto) {
			return false, err // the user's mistake, not the database's
		}
		return false, unavailable(what, err)
	}
	if err := tx.Commit(); err != nil {
		return false, unavailable(what, err)
	}
	return false, nil
}

// writesKept is how long idempotency keys are remembered: far longer than
// any client retries.
const writesKept = 24 * time.Hour

// forgetWrites deletes idempotency records older than writesKept.
func forgetWrites(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	_, err := db.ExecContext(ctx, "DELETE FROM writes WHERE created_ms < $1", time.Now().Add(-writesKept).UnixMilli())
	return err
}

// addNote saves a note once per idempotency key; see [once].
func addNote(ctx context.Context, db *sql.DB, owner, key, body string) (replayed bool, err error) {
	return once(ctx, db, owner, key, "add note", func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO notes (owner, body, created_ms) VALUES ($1, $2, $3)",
			owner, body, time.Now().UnixMilli())
		return err
	})
}

// setLoggedOut records that every session of owner issued until now is
// revoked.
func setLoggedOut(ctx context.Context, db *sql.DB, owner string, at time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	_, err := db.ExecContext(ctx, "INSERT INTO logouts (owner, at_us) VALUES ($1, $2) ON CONFLICT (owner) DO UPDATE SET at_us = excluded.at_us",
		owner, at.UnixMicro())
	if err != nil {
		return unavailable("log out", err)
	}
	return nil
}

// loggedOutAt returns when owner last logged out, in Unix microseconds (0:
// never).
func loggedOutAt(ctx context.Context, db *sql.DB, owner string) (int64, error) {
	var us int64
	err := db.QueryRowContext(ctx, "SELECT at_us FROM logouts WHERE owner = $1", owner).Scan(&us)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return us, err
}

func listNotes(ctx context.Context, db *sql.DB, owner string, limit int) ([]note, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT id, body, created_ms FROM notes WHERE owner = $1 ORDER BY id DESC LIMIT $2", owner, limit)
	if err != nil {
		return nil, unavailable("list notes", err)
	}
	defer rows.Close()
	var ns []note
	for rows.Next() {
		var n note
		var ms int64
		if err := rows.Scan(&n.ID, &n.Body, &ms); err != nil {
			return nil, unavailable("list notes", err)
		}
		n.Created = time.UnixMilli(ms)
		ns = append(ns, n)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list notes", err)
	}
	return ns, nil
}

// addPhoto records an uploaded photo once per idempotency key (see
// [once]), unless it would take its owner's photos past quota bytes
// ([errQuota]). On PostgreSQL a per-owner advisory lock makes concurrent
// uploads of one owner check the quota one after the other; SQLite runs one
// writer at a time anyway.
func addPhoto(ctx context.Context, db *sql.DB, postgres bool, key string, p photo, quota int64) (replayed bool, err error) {
	return once(ctx, db, p.Owner, key, "add photo", func(ctx context.Context, tx *sql.Tx) error {
		if postgres {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", p.Owner); err != nil {
				return err
			}
		}
		var used int64
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(SUM(bytes), 0) FROM photos WHERE owner = $1", p.Owner).Scan(&used); err != nil {
			return err
		}
		if used+p.Bytes > quota {
			return fmt.Errorf("%w: %d of %d bytes used", errQuota, used, quota)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO photos (owner, file, title, width, height, bytes, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
			p.Owner, p.File, p.Title, p.Width, p.Height, p.Bytes, time.Now().UnixMilli())
		return err
	})
}

// listPhotos returns the newest photos of owner, or of everyone when owner
// is empty.
func listPhotos(ctx context.Context, db *sql.DB, owner string, limit int) ([]photo, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	q := "SELECT id, owner, file, title, width, height, created_ms FROM photos WHERE owner = $1 ORDER BY id DESC LIMIT $2"
	args := []any{owner, limit}
	if owner == "" {
		q = "SELECT id, owner, file, title, width, height, created_ms FROM photos ORDER BY id DESC LIMIT $1"
		args = args[1:]
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, unavailable("list photos", err)
	}
	defer rows.Close()
	var ps []photo
	for rows.Next() {
		var p photo
		var ms int64
		if err := rows.Scan(&p.ID, &p.Owner, &p.File, &p.Title, &p.Width, &p.Height, &ms); err != nil {
			return nil, unavailable("list photos", err)
		}
		p.Created = time.UnixMilli(ms)
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list photos", err)
	}
	return ps, nil
}

// deletePhoto deletes owner's photo id once per idempotency key (see
// [once]) and returns its file name, for the caller to remove once the
// transaction committed (empty for a replay: the first attempt removed it).
// It returns [errNoPhoto] when owner has no photo id.
func deletePhoto(ctx context.Context, db *sql.DB, key, owner string, id int64) (file string, replayed bool, err error) {
	replayed, err = once(ctx, db, owner, key, "delete photo", func(ctx context.Context, tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "DELETE FROM photos WHERE id = $1 AND owner = $2 RETURNING file", id, owner).Scan(&file)
		if errors.Is(err, sql.ErrNoRows) {
			return errNoPhoto
		}
		return err
	})
	return file, replayed, err
}

// summary is what every per-user page shows about its user: read on every
// view, changed only by the user's own writes, so worth caching.
type summary struct {
	Photos, Notes int
	From          string // where it was loaded: "primary" or "replica-N"
}

// summaryOf counts owner's photos and notes.
func summaryOf(ctx context.Context, db *sql.DB, owner string) (summary, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var s summary
	err := db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM photos WHERE owner = $1), (SELECT count(*) FROM notes WHERE owner = $1)", owner).Scan(&s.Photos, &s.Notes)
	if err != nil {
		return s, unavailable("count photos and notes", err)
	}
	return s, nil
}
