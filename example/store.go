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
CREATE INDEX IF NOT EXISTS photos_owner ON photos (owner, id);`

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
	created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS photos_owner ON photos (owner, id);`
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
	Created       time.Time
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, errUnavailable, err)
}

func addNote(ctx context.Context, db *sql.DB, owner, body string) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	_, err := db.ExecContext(ctx, "INSERT INTO notes (owner, body, created_ms) VALUES ($1, $2, $3)",
		owner, body, time.Now().UnixMilli())
	if err != nil {
		return unavailable("add note", err)
	}
	return nil
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

func addPhoto(ctx context.Context, db *sql.DB, p photo) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	_, err := db.ExecContext(ctx, "INSERT INTO photos (owner, file, title, width, height, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
		p.Owner, p.File, p.Title, p.Width, p.Height, time.Now().UnixMilli())
	if err != nil {
		return unavailable("add photo", err)
	}
	return nil
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
