package replicapin

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sharednothing/sharednothing/internal/hook"
	"github.com/sharednothing/sharednothing/internal/httperr"
	"github.com/sharednothing/sharednothing/internal/reqstate"
)

// request is one request's routing state, shared by Handler and the read
// and write methods, possibly from several goroutines.
type request struct {
	db        *DB
	w         http.ResponseWriter
	r         *http.Request
	pin       pin  // the valid pin the client came with, if pinned
	pinned    bool // pin is set
	badCookie bool // the client sent a pin cookie that did not verify or had expired

	wrote  atomic.Bool  // Writer or Wrote was called: read from the primary
	marked atomic.Bool  // Wrote was called: pin whatever the status
	sent   atomic.Bool  // the response headers are going out
	target atomic.Int32 // last read: 0 none, -1 primary, i+1 replica i
}

// requestKey finds a request's state for one DB in its context. Keying by
// DB keeps an app with two DBs (two database clusters) from mixing their
// pins.
type requestKey struct{ db *DB }

// request returns the state Handler put in ctx for db, or nil.
func (db *DB) request(ctx context.Context) *request {
	st, _ := ctx.Value(requestKey{db}).(*request)
	return st
}

// Handler is the middleware. It reads the client's pin cookie into the
// request context for the read methods, and as the response headers go
// out it sets the cookie when the request wrote successfully, or clears it
// once every replica has passed the pin. A cookie that was tampered with,
// signed with another key or has expired is ignored, and cleared.
//
// When the request called [DB.Writer] and its status is a success (see
// [Options.Succeeded]), or called [DB.Wrote], Handler reads the primary's
// position once, after the handler's writes and before the first byte of
// the response, and signs it (merged with the pin the client came with,
// never going backwards) into the cookie with an expiry MaxPin ahead.
// Other requests cost no round trip.
//
// Handler registers the pin cookie with the toolkit's response cache, and
// marks requests that carry a valid pin as ones the cache must not answer:
// a pinned client reads through to its own write. Mount it outside any
// handler that reads or writes through the DB.
func (db *DB) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, rs := reqstate.EnsureContext(r.Context())
		rs.AddCookie(reqstate.Cookie{Name: db.cookie.Name, Kind: reqstate.Pin})
		st := &request{db: db, w: w}
		if c, err := r.Cookie(db.cookie.Name); err == nil {
			now := time.Now()
			p, err := db.seal.open(c.Value, now.UnixMilli(), now.Add(db.maxPin).UnixMilli())
			if err == nil {
				st.pin, st.pinned = p, true
				rs.Bypass()
			} else {
				st.badCookie = true
			}
		}
		r = r.WithContext(context.WithValue(ctx, requestKey{db}, st)) // one request copy for both
		st.r = r
		hw := hook.New(w, st.beforeHeaders)
		next.ServeHTTP(hw, r)
		hw.Done()
	})
}

// beforeHeaders runs once, just before the response headers go out.
func (st *request) beforeHeaders(status int) int {
	db := st.db
	st.sent.Store(true) // before loading wrote: see Writer
	pinIt := st.marked.Load() || st.wrote.Load() && db.succeeded(status)
	if st.wrote.Load() && !pinIt {
		db.failedWrites.Add(1)
	}
	switch {
	case pinIt:
		db.setPin(st)
	case st.pinned && db.passed(st.pin):
		db.pinsCleared.Add(1)
		http.SetCookie(st.w, db.cookie.Deletion())
	case st.badCookie:
		http.SetCookie(st.w, db.cookie.Deletion())
	}
	if db.debug {
		if name := db.targetName(st.target.Load()); name != "" {
			st.w.Header().Set("X-Read-From", name)
		}
	}
	return status
}

// setPin reads the primary's position and sets the pin cookie. When the
// position cannot be read, the client is pinned to the primary for MaxPin
// and the error goes to the ErrorHandler; the response is not changed, as
// the handler has already succeeded.
func (db *DB) setPin(st *request) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(st.r.Context()), db.timeout)
	pos, err := db.positions.Primary(ctx, db.primary)
	cancel()
	expires := time.Now().Add(db.maxPin)
	p := pin{pos: pos, expires: expires.UnixMilli()}
	if err != nil {
		p = pin{unknown: true, expires: p.expires}
		db.reportError(st.r, fmt.Errorf("%w: %w", ErrPositionUnknown, err))
	}
	if st.pinned {
		p = merge(st.pin, p)
	}
	db.pinsSet.Add(1)
	http.SetCookie(st.w, db.cookie.HTTPCookie(db.seal.seal(p), expires))
}

// defaultErrorHandler is what a nil Options.ErrorHandler means.
var defaultErrorHandler = httperr.Default

// discard is the ResponseWriter ErrorHandler gets: the response has been
// chosen before replicapin finds its errors, so writes to it are dropped.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
