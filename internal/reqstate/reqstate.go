// Package reqstate is how the toolkit's middlewares tell each other, per
// request, what a response depends on, so that a response cache mounted in
// any order around session and replicapin never serves one client a
// response made for another client's session or pin.
//
// The outermost toolkit middleware puts a *State in the request context
// ([Ensure]); every other one finds and reuses it. Session and replicapin
// register the cookies that carry per-client state ([State.AddCookie]) and
// record how the handler used them; the response cache reads the State
// after the handler to decide whether the response may be stored, and
// stores with the entry which request cookies make it unusable.
package reqstate

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind says how a cookie's presence affects whether a stored response may
// be served.
type Kind uint8

const (
	// Session cookies matter only for responses whose handler read the
	// session: such a response, made for a client without a session, must
	// not be served to a client that has one.
	Session Kind = iota + 1
	// Pin cookies always matter: a pinned client must read through the
	// cache (it must see its own write), whatever the handler did.
	Pin
)

// Cookie is a cookie that carries per-client state. A request carries it
// if it sends a cookie named Name or, for chunked sessions, Name+".N".
type Cookie struct {
	Name string
	Kind Kind
}

// Use says how the handler depended on the session.
type Use uint8

const (
	Untouched Use = iota // the handler never read the session
	Anonymous            // read it and found it empty and left it so
	Personal             // the response depends on this client's own state
)

// State is one request's record. It is safe for concurrent use (handlers
// may read the session from several goroutines).
type State struct {
	mu      sync.Mutex
	cookies []Cookie
	inline  [2]Cookie // backs cookies for the usual session + pin
	use     Use
	bypass  atomic.Bool // read on cache hit paths without the lock
}

type ctxKey struct{}

// From returns the request's State, or nil.
func From(ctx context.Context) *State {
	s, _ := ctx.Value(ctxKey{}).(*State)
	return s
}

// Ensure returns r with a State in its context (reusing one that is
// already there) and that State.
func Ensure(r *http.Request) (*http.Request, *State) {
	ctx, s := EnsureContext(r.Context())
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	return r, s
}

// EnsureContext is [Ensure] for a middleware that copies the request
// itself anyway: it returns ctx with a State (reusing one already there),
// so the middleware pays for one request copy, not two.
func EnsureContext(ctx context.Context) (context.Context, *State) {
	return EnsureContextIn(ctx, nil)
}

// EnsureContextIn is [EnsureContext] for a middleware that has a State of
// its own to offer, embedded in its per-request struct: when ctx has no
// State yet, spare (which must be new) becomes the request's, saving an
// allocation. A nil spare means a new State.
func EnsureContextIn(ctx context.Context, spare *State) (context.Context, *State) {
	if s := From(ctx); s != nil {
		return ctx, s
	}
	if spare == nil {
		spare = new(State)
	}
	return context.WithValue(ctx, ctxKey{}, spare), spare
}

// AddCookie registers a cookie that carries per-client state. Session and
// replicapin call it on every request, whether or not the handler uses it.
func (s *State) AddCookie(c Cookie) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.cookies {
		if have == c {
			return
		}
	}
	if s.cookies == nil {
		s.cookies = s.inline[:0]
	}
	s.cookies = append(s.cookies, c)
}

// Used records how the handler used the session; the strongest use wins
// (Personal over Anonymous over Untouched).
func (s *State) Used(u Use) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.use = max(s.use, u)
	s.mu.Unlock()
}

// Bypass records that this request must not be answered from a cache: it
// must read through (a client pinned after its own write).
func (s *State) Bypass() {
	if s == nil {
		return
	}
	s.bypass.Store(true)
}

// Bypassed reports whether [State.Bypass] was called, without locking:
// cache hit paths ask it on every request. A nil State is never bypassed.
func (s *State) Bypassed() bool { return s != nil && s.bypass.Load() }

// Snapshot is what a response cache needs to know after (or before) the
// handler ran.
type Snapshot struct {
	Use     Use
	Bypass  bool
	Cookies []Cookie
}

// Snapshot returns a copy of the State; a nil State gives the zero Snapshot.
func (s *State) Snapshot() Snapshot {
	if s == nil {
		return Snapshot{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{Use: s.use, Bypass: s.bypass.Load(), Cookies: append([]Cookie(nil), s.cookies...)}
}

// Carries reports whether r sends any of the cookies of the given kinds
// (a cookie named Name, or Name+"."+digits for chunks).
func Carries(r *http.Request, cookies []Cookie, kinds ...Kind) bool {
	if len(cookies) == 0 {
		return false
	}
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			for _, c := range cookies {
				if !matchKind(c.Kind, kinds) {
					continue
				}
				if name == c.Name || (strings.HasPrefix(name, c.Name+".") && isDigits(name[len(c.Name)+1:])) {
					return true
				}
			}
		}
	}
	return false
}

func matchKind(k Kind, kinds []Kind) bool {
	if len(kinds) == 0 {
		return true
	}
	for _, want := range kinds {
		if k == want {
			return true
		}
	}
	return false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
