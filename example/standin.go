package main

// TEMPORARY STAND-INS. The toolkit's session, localcache, thumbnail and
// replicapin packages are being written in parallel; until each lands, the
// example uses the minimal stand-in below with the same method names, and
// each is replaced by the real package as soon as it is committed. Nothing
// here is meant to be copied.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/gorilla/securecookie"
)

// --- session stand-in ---

type sessionManager struct {
	codecs []securecookie.Codec
	Secure bool
}

type sessionState struct {
	mu      sync.Mutex
	values  map[string]string
	changed bool
	destroy bool
}

type sessionKey struct{}

func newSessionManager(keyPairs ...[]byte) *sessionManager {
	return &sessionManager{codecs: securecookie.CodecsFromPairs(keyPairs...)}
}

func (m *sessionManager) LoadAndSave(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &sessionState{values: map[string]string{}}
		if c, err := r.Cookie("session"); err == nil {
			var raw string
			if securecookie.DecodeMulti("session", c.Value, &raw, m.codecs...) == nil {
				json.Unmarshal([]byte(raw), &st.values)
			}
		}
		ctx := context.WithValue(r.Context(), sessionKey{}, st)
		sw := &sessionWriter{ResponseWriter: w, m: m, st: st}
		next.ServeHTTP(sw, r.WithContext(ctx))
		sw.flush()
	})
}

type sessionWriter struct {
	http.ResponseWriter
	m    *sessionManager
	st   *sessionState
	done bool
}

func (w *sessionWriter) flush() {
	if w.done {
		return
	}
	w.done = true
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	switch {
	case w.st.destroy:
		http.SetCookie(w.ResponseWriter, &http.Cookie{Name: "session", Value: "", Path: "/", MaxAge: -1})
	case w.st.changed:
		b, _ := json.Marshal(w.st.values)
		v, err := securecookie.EncodeMulti("session", string(b), w.m.codecs...)
		if err == nil {
			http.SetCookie(w.ResponseWriter, &http.Cookie{Name: "session", Value: v, Path: "/", HttpOnly: true,
				Secure: w.m.Secure, SameSite: http.SameSiteLaxMode, MaxAge: 86400})
		}
	}
}

func (w *sessionWriter) WriteHeader(code int) { w.flush(); w.ResponseWriter.WriteHeader(code) }
func (w *sessionWriter) Write(b []byte) (int, error) {
	w.flush()
	return w.ResponseWriter.Write(b)
}
func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (m *sessionManager) state(ctx context.Context) *sessionState {
	return ctx.Value(sessionKey{}).(*sessionState)
}

func (m *sessionManager) Put(ctx context.Context, k string, v any) {
	st := m.state(ctx)
	st.mu.Lock()
	st.values[k] = fmt.Sprint(v)
	st.changed, st.destroy = true, false
	st.mu.Unlock()
}

func (m *sessionManager) GetString(ctx context.Context, k string) string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.values[k]
}

func (m *sessionManager) PopString(ctx context.Context, k string) string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	v, ok := st.values[k]
	if ok {
		delete(st.values, k)
		st.changed = true
	}
	return v
}

func (m *sessionManager) Destroy(ctx context.Context) {
	st := m.state(ctx)
	st.mu.Lock()
	st.values = map[string]string{}
	st.destroy = true
	st.mu.Unlock()
}

func (m *sessionManager) RenewToken(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	st.changed = true
	st.mu.Unlock()
	return nil
}

// --- localcache stand-in: no caching at all ---

type responseCache struct{}

func (*responseCache) Handler(next http.Handler) http.Handler { return next }

// --- thumbnail stand-in: serves the original, signed ---

type thumbnailSpec struct{ Width, Height int }

type thumbnailHandler struct {
	dir    string
	keys   [][]byte
	prefix string
}

func (h *thumbnailHandler) sign(key []byte, name string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *thumbnailHandler) URL(name string, sp thumbnailSpec) string {
	return fmt.Sprintf("%s/%dx%d/%s?s=%s", h.prefix, sp.Width, sp.Height, url.PathEscape(name), h.sign(h.keys[0], name))
}

func (h *thumbnailHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, h.prefix+"/")
	_, name, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		http.Error(w, "bad thumbnail path", http.StatusBadRequest)
		return
	}
	sig := r.URL.Query().Get("s")
	for _, k := range h.keys {
		if hmac.Equal([]byte(sig), []byte(h.sign(k, name))) {
			http.ServeFile(w, r, path.Join(h.dir, name))
			return
		}
	}
	http.Error(w, "bad signature", http.StatusForbidden)
}

// --- replicapin stand-in: every read goes to the primary ---

type pinnedDB struct {
	primary  *sql.DB
	replicas []*sql.DB
}

func (d *pinnedDB) Handler(next http.Handler) http.Handler { return next }
func (d *pinnedDB) Reader(ctx context.Context) *sql.DB     { return d.primary }
func (d *pinnedDB) Writer(ctx context.Context) *sql.DB     { return d.primary }
func (d *pinnedDB) Close() error                           { return nil }

func (d *pinnedDB) replicaHealth() []replicaHealth {
	var hs []replicaHealth
	for i := range d.replicas {
		hs = append(hs, replicaHealth{Name: fmt.Sprintf("replica-%d", i+1), Up: true})
	}
	return hs
}
