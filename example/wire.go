package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	sharednothing "github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/coherent"

	"github.com/sharednothing/sharednothing/localcache"
	"github.com/sharednothing/sharednothing/replicapin"
	"github.com/sharednothing/sharednothing/session"
	"github.com/sharednothing/sharednothing/thumbnail"
)

// newSessions returns the session manager. Its key comes from the current
// secret and its previous keys from the other accepted secrets, so cookies
// sealed under an accepted secret are read and re-sealed under the current
// one. Over HTTPS the cookie is named __Host-session: browsers then accept
// it only from this exact host, Secure and for the whole site, so a sibling
// subdomain cannot plant one. validate rejects sessions revoked by a logout.
func newSessions(secrets [][]byte, secure bool, validate func(context.Context, *session.Values) bool) *session.Manager {
	keys := derive(secrets, "session")
	m := session.New(keys[0], keys[1:]...)
	m.Cookie.Insecure = !secure // only for plain HTTP, as in the demo
	if secure {
		m.Cookie.Name = "__Host-session"
	}
	m.Validate = validate
	return m
}

// logoutTTL is how long an instance trusts its cached copy of a user's
// logout time. With PostgreSQL a logout is announced to every instance over
// the invalidation bus (package coherent) and takes effect everywhere within
// milliseconds; the TTL bounds how long a copied cookie can outlive a logout
// when the bus is down, and on SQLite (no bus).
const logoutTTL = 2 * time.Second

// newLogouts returns the per-instance cache of users' logout times.
func newLogouts() (*localcache.Cache[string, int64], error) {
	return localcache.New(localcache.Options[string, int64]{MaxEntries: 100_000, TTL: logoutTTL, ErrorTTL: time.Second})
}

// newBus starts the invalidation bus: a LISTEN connection of its own to the
// primary (through the same multi-host connection string, so it follows a
// failover), over which the instances tell each other which cached logout
// times, photo and note counts and home pages changed. With pins as its
// Replicas, a key changed at WAL position P is refilled only from a replica
// that has replayed P, or from the primary, until every replica has:
// position-aware refill. refill false turns that off; only the end-to-end
// test that proves it matters does that (see [config.noRefill]).
func newBus(primaryURL, instance string, primary *sql.DB, pins *replicapin.DB, refill bool) (*coherent.Bus, error) {
	cfg, err := pgx.ParseConfig(primaryURL)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = instance + " bus"
	opts := coherent.Options{
		DB: primary,
		// Retry the listener at least every second while the primary is
		// down (default: backoff up to 5 s): once it is back, every
		// instance flushes what it may have missed within about a second.
		// A few instances cost the primary one connection attempt each per
		// second.
		MaxBackoff: time.Second,
		Dial: func(ctx context.Context) (coherent.Listener, error) {
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return pgxListener{conn}, nil
		},
	}
	if refill {
		opts.Replicas = coherent.Replicapin(pins)
	}
	return coherent.New(opts)
}

// pgxListener is a coherent.Listener on a pgx connection.
type pgxListener struct{ conn *pgx.Conn }

func (l pgxListener) Listen(ctx context.Context, channel string) error {
	_, err := l.conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	return err
}

func (l pgxListener) WaitForNotification(ctx context.Context) (string, error) {
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		return "", err
	}
	return n.Payload, nil
}

func (l pgxListener) Close() error { return l.conn.Close(context.Background()) }

// newCache returns the response cache for the public home page. The page
// says how long it stays fresh (Cache-Control: public, max-age=300) and tags
// itself "photos"; every upload and delete purges that tag on every
// instance over the bus.
func newCache() (*localcache.ResponseCache, error) {
	return localcache.NewResponseCache(localcache.ResponseOptions{MaxBytes: 8 << 20})
}

// summaryTTL bounds how long a cached photo and note count can be stale
// when the bus is down (or on SQLite, with a single instance, never: the
// instance drops it itself).
const summaryTTL = 10 * time.Minute

// newSummaries returns the per-instance cache of users' photo and note
// counts.
func newSummaries() (*localcache.Cache[string, summary], error) {
	return localcache.New(localcache.Options[string, summary]{MaxEntries: 100_000, TTL: summaryTTL})
}

// newPins returns the replica router. Pin cookies are sealed with the
// current secret's key and accepted under every other accepted secret, so a
// client that just wrote stays pinned while a secret rotation rolls across
// the instances. A client is pinned only by a request that wrote through
// Writer and then succeeded (status < 400): a write refused because the
// primary is down does not tie the client's reads to that primary. SQLite
// has no replicas and no WAL positions to read, so there it pins by time,
// which costs nothing.
func newPins(primary *sql.DB, replicas []*sql.DB, secrets [][]byte, dialect string, secure bool) (*replicapin.DB, error) {
	keys := derive(secrets, "replicapin")
	opts := replicapin.Options{
		Key:          keys[0],
		PreviousKeys: keys[1:],
		Cookie:       sharednothing.Cookie{Insecure: !secure, Name: pinCookie(secure)},
		DebugHeader:  true, // X-Read-From: primary|replica-N
	}
	if dialect == "sqlite" {
		opts.Positions = replicapin.TimeWindow(time.Second)
	}
	rs := make([]replicapin.Replica, len(replicas))
	for i, r := range replicas {
		rs[i] = replicapin.Replica{DB: r} // named replica-1, replica-2, …
	}
	return replicapin.New(primary, rs, opts)
}

// pinCookie names the pin cookie: __Host-pin over HTTPS (see newSessions).
func pinCookie(secure bool) string {
	if secure {
		return "__Host-pin"
	}
	return "_pin"
}

// newThumbs returns the thumbnail handler: URLs are signed with the current
// secret's key, and URLs signed under any other accepted secret are still
// served, so a page rendered by an instance on the next (or the previous)
// secret keeps its thumbnails during a rotation.
func newThumbs(uploads string, secrets [][]byte, queue int) (*thumbnail.Handler, error) {
	keys := derive(secrets, "thumbnail")
	h, err := thumbnail.New(thumbnail.Options{
		Source:       thumbnail.Dir(uploads),
		Key:          keys[0],
		PreviousKeys: keys[1:],
		Prefix:       "/thumbs",
		QueueSize:    queue,
	})
	if err != nil {
		return nil, fmt.Errorf("thumbnails: %w", err)
	}
	return h, nil
}
