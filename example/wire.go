package main

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sharednothing/sharednothing/localcache"
	"github.com/sharednothing/sharednothing/replicapin"
	"github.com/sharednothing/sharednothing/session"
	"github.com/sharednothing/sharednothing/thumbnail"
)

// newSessions returns the session manager: one hash and block key pair per
// secret, newest first, so cookies sealed under an accepted secret are read
// and re-sealed under the current one.
func newSessions(secrets [][]byte, secure bool) *session.Manager {
	hash, block := derive(secrets, "session hash"), derive(secrets, "session block")
	var pairs [][]byte
	for i := range secrets {
		pairs = append(pairs, hash[i], block[i])
	}
	m := session.New(pairs...)
	m.Cookie.Secure = secure // false only for plain HTTP, as in the demo
	return m
}

// newCache returns the response cache for the public home page. The page
// says how long it stays fresh (Cache-Control: public, max-age=2).
func newCache() (*localcache.ResponseCache, error) {
	return localcache.NewResponseCache(localcache.ResponseOptions{MaxBytes: 8 << 20})
}

// pins routes reads and writes with one replicapin.DB per secret, newest
// first: the first seals the pin cookies of this instance's writes, and the
// others read the pin cookies that instances on another secret set, so a
// client that just wrote stays pinned while a secret rotation rolls across
// the instances. (A replicapin.DB checks its cookie with its one Key and
// ignores, and clears, a cookie sealed with another, so each secret's DB has
// its own cookie name.) With one secret it is a plain replicapin.DB.
type pins struct {
	dbs     []*replicapin.DB
	primary *sql.DB
	names   map[*sql.DB]string // "primary", "replica-1", …
}

// newPins returns the replica router. SQLite has no replicas and no WAL
// positions to read, so there it pins by time, which costs nothing.
func newPins(primary *sql.DB, replicas []*sql.DB, secrets [][]byte, dialect string, secure bool) (*pins, error) {
	p := &pins{primary: primary, names: map[*sql.DB]string{primary: "primary"}}
	for i, r := range replicas {
		p.names[r] = fmt.Sprintf("replica-%d", i+1)
	}
	for i, key := range derive(secrets, "replicapin") {
		opts := replicapin.Options{
			Key:    key,
			Cookie: replicapin.CookieOptions{Name: "_pin_" + hex.EncodeToString(key[:3]), Insecure: !secure},
			// Only Wrote pins a client (see there), not every POST.
			WriteMethods: []string{},
			DebugHeader:  i == 0, // X-Read-From: primary|replica-N
		}
		if dialect == "sqlite" {
			opts.Positions = replicapin.TimeWindow(time.Second)
		}
		db, err := replicapin.New(primary, replicas, opts)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.dbs = append(p.dbs, db)
	}
	return p, nil
}

// Handler runs every DB's middleware.
func (p *pins) Handler(next http.Handler) http.Handler {
	for i := len(p.dbs) - 1; i >= 0; i-- {
		next = p.dbs[i].Handler(next)
	}
	return next
}

// Wrote pins the client to the primary's position after the request's
// successful writes. Handlers write to the primary and call Wrote once the
// write has succeeded, rather than writing through replicapin's Writer: a
// write that failed because the primary is down must not pin the client's
// reads to that primary (replicapin pins to the primary for MaxPin when it
// cannot read the position), while the replica could serve them.
func (p *pins) Wrote(ctx context.Context) { p.dbs[0].Writer(ctx) }

// Read runs fn on a replica that has caught up with every pin the client
// carries, else on the primary (see [replicapin.DB.Read]), and says which.
func (p *pins) Read(ctx context.Context, fn func(*sql.DB) error) (from string, err error) {
	for _, db := range p.dbs[1:] {
		if db.Reader(ctx) == p.primary {
			ctx = replicapin.UsePrimary(ctx)
			break
		}
	}
	err = p.dbs[0].Read(ctx, func(db *sql.DB) error {
		from = p.names[db]
		return fn(db)
	})
	return from, err
}

// Stats reports the first DB's view of the servers.
func (p *pins) Stats() replicapin.Stats { return p.dbs[0].Stats() }

// Close stops every DB's monitors.
func (p *pins) Close() {
	for _, db := range p.dbs {
		db.Close()
	}
}

// thumbs serves /thumbs/… with one thumbnail.Handler per secret and signs
// new URLs with the current one. A thumbnail.Handler checks signatures with
// its one Key, so while a secret rotates, a URL is served by the handler
// whose key signed it: the page that linked it may have come from an
// instance already on the next secret.
type thumbs struct {
	hs []*thumbnail.Handler // newest secret first
}

func newThumbs(uploads string, secrets [][]byte) (*thumbs, error) {
	t := &thumbs{}
	for _, key := range derive(secrets, "thumbnail") {
		h, err := thumbnail.New(thumbnail.Options{Source: thumbnail.Dir(uploads), Key: key, Prefix: "/thumbs"})
		if err != nil {
			return nil, fmt.Errorf("thumbnails: %w", err)
		}
		t.hs = append(t.hs, h)
	}
	return t, nil
}

// URL returns the signed URL of name's thumbnail, signed with the current
// secret.
func (t *thumbs) URL(name string, spec thumbnail.Spec) string { return t.hs[0].URL(name, spec) }

func (t *thumbs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.handler(r).ServeHTTP(w, r)
}

// handler picks the handler whose key signed r's URL, by signing the same
// spec and name with each accepted key; the current one when none matches
// (it then answers 403 or 400 itself).
func (t *thumbs) handler(r *http.Request) *thumbnail.Handler {
	if len(t.hs) == 1 {
		return t.hs[0]
	}
	rest := strings.TrimPrefix(r.URL.Path, "/thumbs/")
	specText, name, ok := strings.Cut(rest, "/")
	sig := r.URL.Query().Get("s")
	spec, err := thumbnail.ParseSpec(specText)
	if !ok || err != nil || sig == "" {
		return t.hs[0]
	}
	for _, h := range t.hs {
		u, err := url.Parse(h.URL(name, spec))
		if err == nil && subtle.ConstantTimeCompare([]byte(u.Query().Get("s")), []byte(sig)) == 1 {
			return h
		}
	}
	return t.hs[0]
}
