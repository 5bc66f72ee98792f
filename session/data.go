package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/sharednothing/sharednothing/internal/reqstate"
)

// The data methods below take the request's context (r.Context() inside a
// handler wrapped by [Manager.LoadAndSave], or a context from
// [Manager.Load]) and panic if it carries no session from this Manager. The
// first call on a request opens the cookie. Methods that change the session
// must run before the response headers are written; later changes are
// reported to ErrorHandler as [ErrHeadersWritten]. Changes made after the
// handler has returned are lost.

// Put sets key to val and marks the session Modified.
//
// Values of these types come back from [Manager.Get] with the same type and
// value, in this request and later ones: nil, string, []byte, bool, int,
// int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32,
// float64, time.Time (same instant; the location becomes a fixed zone with
// the same offset) and json.RawMessage. Any other value (structs, slices,
// maps, pointers, named types) is encoded as JSON right away, and Get
// returns that json.RawMessage; read it back with [GetAs]. A value that
// cannot be encoded as JSON leaves the session unchanged and is reported
// to ErrorHandler (or by [Manager.Commit]) when the session is saved.
func (m *Manager) Put(ctx context.Context, key string, val any) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.modify()
	val, err := normalize(val)
	if err != nil {
		if st.d.putErr == nil {
			st.d.putErr = fmt.Errorf("session: value for key %q: %w", key, err)
		}
		return
	}
	i, ok := st.d.p.find(key)
	if ok {
		st.d.p.entries[i].val = val
		return
	}
	st.d.p.entries = slices.Insert(st.d.p.entries, i, entry{key, val})
}

// Get returns the value for key, or nil if there is none. Its type is the
// type given to [Manager.Put] for the types Put lists, and json.RawMessage
// for any other: use [GetAs] (or json.Unmarshal) for those, since a type
// assertion such as Get(ctx, "user").(User) never succeeds.
func (m *Manager) Get(ctx context.Context, key string) any {
	v, _ := m.lookup(ctx, key)
	return v
}

func (m *Manager) lookup(ctx context.Context, key string) (any, bool) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	if i, ok := st.d.p.find(key); ok {
		return st.d.p.entries[i].val, true
	}
	return nil, false
}

// GetAs returns the value for key as a T. It never fails silently: it
// returns [ErrNotFound] if the session has no value for key, and an error
// if the value is neither a T nor JSON that decodes into a T. Values of the
// types listed at [Manager.Put] must be asked for with exactly that type
// (an int is not an int64); any other value is decoded from its JSON.
//
//	user, err := session.GetAs[User](sessions, ctx, "user")
func GetAs[T any](m *Manager, ctx context.Context, key string) (T, error) {
	var zero T
	v, ok := m.lookup(ctx, key)
	if !ok {
		return zero, fmt.Errorf("%w %q", ErrNotFound, key)
	}
	if t, ok := v.(T); ok {
		return t, nil
	}
	if raw, ok := v.(json.RawMessage); ok {
		var t T
		if err := json.Unmarshal(raw, &t); err != nil {
			return zero, fmt.Errorf("session: value for key %q does not decode as %v: %w", key, reflect.TypeFor[T](), err)
		}
		return t, nil
	}
	return zero, fmt.Errorf("session: value for key %q is a %T, not a %v", key, v, reflect.TypeFor[T]())
}

// Pop returns the value for key, as [Manager.Get] does, and removes it from
// the session (a flash message, for example), or returns nil if there is
// none.
func (m *Manager) Pop(ctx context.Context, key string) any {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	i, ok := st.d.p.find(key)
	if !ok {
		return nil
	}
	val := st.d.p.entries[i].val
	st.modify()
	st.d.p.entries = slices.Delete(st.d.p.entries, i, i+1)
	return val
}

// Remove deletes key from the session. Removing a missing key changes
// nothing.
func (m *Manager) Remove(ctx context.Context, key string) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	if i, ok := st.d.p.find(key); ok {
		st.modify()
		st.d.p.entries = slices.Delete(st.d.p.entries, i, i+1)
		return
	}
	st.rs.Used(reqstate.Personal) // conservative: the handler meant to change it
}

// Clear deletes every key but keeps the session itself (its token and
// deadline). Clearing an empty session changes nothing. The error is
// always nil; it is there for scs's signature.
func (m *Manager) Clear(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	if len(st.d.p.entries) > 0 {
		st.modify()
		st.d.p.entries = nil
		return nil
	}
	st.rs.Used(reqstate.Personal) // conservative: the handler meant to change it
	return nil
}

// Destroy ends the session: [Manager.Status] becomes Destroyed and the
// response deletes the session cookie and all its chunks. Data put after
// Destroy in the same request starts a new session with a new token and
// deadline. A copy of the old cookie stays valid until its deadline unless
// [Manager.Validate] rejects it (see the package documentation on
// revocation). The error is always nil; it is there for scs's signature.
func (m *Manager) Destroy(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	st.changed()
	st.d.p = st.newPayload(unixNano(time.Now()))
	st.d.fresh, st.d.destroyed, st.d.modified, st.d.codec = true, true, false, 0
	st.d.putErr = nil
	st.m.stats.destroyed.Add(1)
	return nil
}

// RenewToken gives the session a new random token, a new issue time and a
// new deadline (now plus Lifetime), keeping its data. Call it when the
// user logs in or out or their privileges change: it defeats session
// fixation, and "log out everywhere" checks in [Manager.Validate] key on
// the issue time. The error is always nil; it is there for scs's signature.
func (m *Manager) RenewToken(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.modify()
	rand.Read(st.d.p.id[:])
	now := unixNano(time.Now())
	st.d.p.issued = now
	st.d.p.expires = addClamped(now, st.cfg.lifetime)
	return nil
}

// MergeSession merges into the session the data of the session sealed in
// token (for example one lost across an OAuth redirect with a strict
// SameSite cookie): token's values replace values under the same keys and
// the later deadline wins. An invalid, expired or revoked token, or the
// session's own, changes nothing. Unlike scs with a server-side store, the
// other token stays valid until its own deadline. The error is always nil.
func (m *Manager) MergeSession(ctx context.Context, token string) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	other, _, ok := st.open(token, unixNano(time.Now()))
	if !ok || other.id == st.d.p.id {
		return nil
	}
	st.modify()
	for _, e := range other.entries {
		i, found := st.d.p.find(e.key)
		if found {
			st.d.p.entries[i].val = e.val
			continue
		}
		st.d.p.entries = slices.Insert(st.d.p.entries, i, e)
	}
	st.d.p.expires = max(st.d.p.expires, other.expires)
	return nil
}

// Status reports what this request did to the session: [Modified] when the
// client needs a new token (the session changed, or must be re-sealed to
// record activity for IdleTimeout or with the newest key), [Destroyed]
// after [Manager.Destroy] with nothing put since, otherwise [Unmodified].
// A custom middleware around [Manager.Load] calls [Manager.Commit] when it
// is Modified and deletes the token when it is Destroyed.
func (m *Manager) Status(ctx context.Context) Status {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	return st.status(unixNano(time.Now()))
}

// RememberMe sets whether the session's cookie persists (carries Expires
// and Max-Age, so it outlives the browser session). It matters when
// Cookie.Persist is false: "remember me" sessions persist, others end when
// the browser closes. It is sealed into the session and marks it Modified.
func (m *Manager) RememberMe(ctx context.Context, val bool) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.modify()
	if val {
		st.d.p.flags |= flagRememberMe
	} else {
		st.d.p.flags &^= flagRememberMe
	}
}

// Deadline returns when the session expires at the latest: its absolute
// lifetime, set at creation or renewal, or by [Manager.SetDeadline]. An
// idle timeout may end it sooner.
func (m *Manager) Deadline(ctx context.Context) time.Time {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	return time.Unix(0, st.d.p.expires)
}

// SetDeadline sets the session's absolute deadline, for example 30 days
// ahead for "remember me" together with [Manager.RememberMe]; it marks the
// session Modified. An idle timeout may still end it sooner.
func (m *Manager) SetDeadline(ctx context.Context, deadline time.Time) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.modify()
	st.d.p.expires = unixNano(deadline)
}

// Token returns the session's ID, a random 22-character string that stays
// the same for the session's life until [Manager.RenewToken] replaces it,
// or "" for a session never saved yet (as in scs). Use it to name a
// session in logs or in a revocation list. It is not the cookie value:
// that is the sealed session, which changes whenever the session is saved
// ([Manager.Commit] returns it).
func (m *Manager) Token(ctx context.Context) string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	return (&Values{&st.d.p}).Token()
}

// Exists reports whether key is in the session.
func (m *Manager) Exists(ctx context.Context, key string) bool {
	_, ok := m.lookup(ctx, key)
	return ok
}

// Keys returns the session's keys in sorted order (an empty slice for an
// empty session).
func (m *Manager) Keys(ctx context.Context) []string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	keys := make([]string, len(st.d.p.entries))
	for i, e := range st.d.p.entries {
		keys[i] = e.key
	}
	return keys
}

// GetString returns the string for key, or "" if it is missing or not a
// string.
func (m *Manager) GetString(ctx context.Context, key string) string {
	v, _ := m.Get(ctx, key).(string)
	return v
}

// GetBool returns the bool for key, or false if it is missing or not a
// bool.
func (m *Manager) GetBool(ctx context.Context, key string) bool {
	v, _ := m.Get(ctx, key).(bool)
	return v
}

// GetInt returns the int for key, or 0 if it is missing or not an int.
func (m *Manager) GetInt(ctx context.Context, key string) int {
	v, _ := m.Get(ctx, key).(int)
	return v
}

// GetInt32 returns the int32 for key, or 0 if it is missing or not an
// int32.
func (m *Manager) GetInt32(ctx context.Context, key string) int32 {
	v, _ := m.Get(ctx, key).(int32)
	return v
}

// GetInt64 returns the int64 for key, or 0 if it is missing or not an int64.
func (m *Manager) GetInt64(ctx context.Context, key string) int64 {
	v, _ := m.Get(ctx, key).(int64)
	return v
}

// GetFloat returns the float64 for key, or 0 if it is missing or not a
// float64.
func (m *Manager) GetFloat(ctx context.Context, key string) float64 {
	v, _ := m.Get(ctx, key).(float64)
	return v
}

// GetBytes returns the []byte for key, or nil if it is missing or not a
// []byte.
func (m *Manager) GetBytes(ctx context.Context, key string) []byte {
	v, _ := m.Get(ctx, key).([]byte)
	return v
}

// GetTime returns the time.Time for key, or the zero time if it is missing
// or not a time.Time.
func (m *Manager) GetTime(ctx context.Context, key string) time.Time {
	v, _ := m.Get(ctx, key).(time.Time)
	return v
}

// PopString is [Manager.GetString] that also removes key.
func (m *Manager) PopString(ctx context.Context, key string) string {
	v, _ := m.Pop(ctx, key).(string)
	return v
}

// PopBool is [Manager.GetBool] that also removes key.
func (m *Manager) PopBool(ctx context.Context, key string) bool {
	v, _ := m.Pop(ctx, key).(bool)
	return v
}

// PopInt is [Manager.GetInt] that also removes key.
func (m *Manager) PopInt(ctx context.Context, key string) int {
	v, _ := m.Pop(ctx, key).(int)
	return v
}

// PopInt32 is [Manager.GetInt32] that also removes key.
func (m *Manager) PopInt32(ctx context.Context, key string) int32 {
	v, _ := m.Pop(ctx, key).(int32)
	return v
}

// PopInt64 is [Manager.GetInt64] that also removes key.
func (m *Manager) PopInt64(ctx context.Context, key string) int64 {
	v, _ := m.Pop(ctx, key).(int64)
	return v
}

// PopFloat is [Manager.GetFloat] that also removes key.
func (m *Manager) PopFloat(ctx context.Context, key string) float64 {
	v, _ := m.Pop(ctx, key).(float64)
	return v
}

// PopBytes is [Manager.GetBytes] that also removes key.
func (m *Manager) PopBytes(ctx context.Context, key string) []byte {
	v, _ := m.Pop(ctx, key).([]byte)
	return v
}

// PopTime is [Manager.GetTime] that also removes key.
func (m *Manager) PopTime(ctx context.Context, key string) time.Time {
	v, _ := m.Pop(ctx, key).(time.Time)
	return v
}

// Values is the read-only view of a session that [Manager.Validate]
// inspects.
type Values struct{ p *payload }

// Token returns the session's ID, as [Manager.Token] does.
func (v *Values) Token() string {
	if v.p.id == [idLen]byte{} {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(v.p.id[:])
}

// Issued returns when the session was created or last renewed with
// [Manager.RenewToken], to the nanosecond.
func (v *Values) Issued() time.Time { return time.Unix(0, v.p.issued) }

// Deadline returns when the session's absolute lifetime ends.
func (v *Values) Deadline() time.Time { return time.Unix(0, v.p.expires) }

// Get returns the value for key, or nil, as [Manager.Get] does.
func (v *Values) Get(key string) any {
	if i, ok := v.p.find(key); ok {
		return v.p.entries[i].val
	}
	return nil
}
