package replicapin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sharednothing/sharednothing/internal/hook"
)

// request is one request's routing state, shared by Handler, Reader and
// Writer, possibly from several goroutines. It is also the request's
// context: it wraps the incoming one and answers Value(requestKey{db}) with
// itself, which saves a context.WithValue allocation per request.
type request struct {
	context.Context
	db        *DB
	w         http.ResponseWriter
	r         *http.Request
	pin       pin  // the valid pin the client came with, if pinned
	pinned    bool // pin is set
	badCookie bool // the client sent a pin cookie that did not verify or had expired

	wrote  atomic.Bool  // the request wrote: a write method, or Writer was called
	sent   atomic.Bool  // the response headers are going out
	target atomic.Int32 // last Reader result: 0 none, -1 primary, i+1 replica i
}

// Handler is the middleware. It reads the client's pin cookie into the
// request context for [DB.Reader], and as the response headers go out it
// sets the cookie when the request wrote, or clears it once every replica
// has passed the pin. A cookie that was tampered with, sealed with another
// key or has expired is ignored, and cleared.
//
// When the request wrote, Handler reads the primary's position once, after
// the handler's writes and before the first byte of the response, and
// seals it (merged with the pin the client came with, never going
// backwards) into the cookie with an expiry MaxPin ahead. Mount it outside
// any handler that calls Reader or Writer, and outside any cache that
// could store responses carrying its Set-Cookie.
func (db *DB) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &request{Context: r.Context(), db: db, w: w}
		if c, err := r.Cookie(db.cookie.Name); err == nil {
			now := db.now()
			p, err := db.seal.open(c.Value, now.UnixMilli(), now.Add(db.maxPin).UnixMilli())
			if err == nil {
				st.pin, st.pinned = p, true
			} else {
				st.badCookie = true
			}
		}
		if db.isWriteMethod(r.Method) {
			st.wrote.Store(true)
		}
		r = r.WithContext(st)
		st.r = r
		hw := hook.New(w, st.beforeHeaders)
		next.ServeHTTP(hw, r)
		hw.Done()
	})
}

// Value returns st for its requestKey and defers every other key to the
// request's own context.
func (st *request) Value(key any) any {
	if k, ok := key.(requestKey); ok && k.db == st.db {
		return st
	}
	return st.Context.Value(key)
}

func (db *DB) isWriteMethod(m string) bool {
	if db.writeMethods != nil {
		return slices.Contains(db.writeMethods, m)
	}
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// beforeHeaders runs once, just before the response headers go out.
func (st *request) beforeHeaders(status int) int {
	db := st.db
	st.sent.Store(true) // before loading wrote: see Writer
	switch {
	case st.wrote.Load():
		db.setPin(st)
	case st.pinned && db.passed(st.pin):
		db.pinsCleared.Add(1)
		db.clearCookie(st.w)
	case st.badCookie:
		db.clearCookie(st.w)
	}
	if db.debug {
		switch t := st.target.Load(); {
		case t < 0:
			st.w.Header().Set("X-Read-From", "primary")
		case t > 0:
			st.w.Header().Set("X-Read-From", db.replicas[t-1].name)
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
	p := pin{pos: pos, expires: db.now().Add(db.maxPin).UnixMilli()}
	if err != nil {
		p = pin{unknown: true, expires: p.expires}
		db.errorHandler(st.r, fmt.Errorf("%w: %w", ErrPositionUnknown, err))
	}
	if st.pinned {
		p = merge(st.pin, p)
	}
	db.pinsSet.Add(1)
	http.SetCookie(st.w, db.newCookie(db.seal.seal(p), int((db.maxPin+time.Second-1)/time.Second)))
}

func (db *DB) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, db.newCookie("", -1))
}

func (db *DB) newCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     db.cookie.Name,
		Value:    value,
		Path:     db.cookie.Path,
		Domain:   db.cookie.Domain,
		MaxAge:   maxAge,
		Secure:   !db.cookie.Insecure,
		HttpOnly: true,
		SameSite: db.cookie.SameSite,
	}
}
