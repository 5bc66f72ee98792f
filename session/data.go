package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"time"
)

// The data methods below take the request's context (r.Context() inside a
// handler wrapped by [Manager.LoadAndSave]) and panic if it carries no
// session from this Manager. The first call on a request opens the cookie.
// Methods that change the session must run before the response headers are
// written; later changes are reported to ErrorFunc as [ErrHeadersWritten].
// Changes made after the handler has returned are lost.

// Put sets key to val. Values of the typed getters' types (string, bool,
// int, int64, float64, []byte, time.Time) and the other integer and float
// types come back with the same type on later requests. Any other value is
// stored as JSON: [Manager.Get] then returns it as json.RawMessage, and
// [Manager.GetJSON] decodes it into a typed destination. A value that cannot
// be encoded is reported to ErrorFunc when the response is sent.
func (m *Manager) Put(ctx context.Context, key string, val any) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.modify()
	i, ok := st.d.p.find(key)
	if ok {
		st.d.p.entries[i].val = val
		return
	}
	st.d.p.entries = slices.Insert(st.d.p.entries, i, entry{key, val})
}

// Get returns the value for key, or nil if there is none.
func (m *Manager) Get(ctx context.Context, key string) any {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	if i, ok := st.d.p.find(key); ok {
		return st.d.p.entries[i].val
	}
	return nil
}

// Pop returns the value for key and removes it from the session (a flash
// message, for example), or returns nil if there is none.
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
	}
}

// Clear deletes every key but keeps the session itself (its ID and
// deadline).
func (m *Manager) Clear(ctx context.Context) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	if len(st.d.p.entries) > 0 {
		st.modify()
		st.d.p.entries = nil
	}
}

// Destroy ends the session: the response expires the session cookie and all
// its chunks. Data put after Destroy in the same request starts a new session
// with a new ID and a new deadline.
func (m *Manager) Destroy(ctx context.Context) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.modify()
	now := st.cfg.now().Unix()
	st.d.p = payload{issued: now, expires: now + st.cfg.lifetime, active: now}
	st.d.fresh, st.d.destroyed, st.d.modified = true, true, false
}

// RenewToken gives the session a fresh random ID and issue time and re-seals
// it, keeping its data and deadline. Call it when the user logs in or their
// privileges change: defences against session fixation, and
// "log out other sessions" checks in [Manager.Validate], key on the ID and
// issue time.
func (m *Manager) RenewToken(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.modify()
	rand.Read(st.d.p.id[:])
	st.d.p.issued = st.cfg.now().Unix()
	return nil
}

// Exists reports whether key is in the session.
func (m *Manager) Exists(ctx context.Context, key string) bool {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	_, ok := st.d.p.find(key)
	return ok
}

// Keys returns the session's keys in sorted order.
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

// ID returns the session's ID, a random 22-character string that
// [Manager.RenewToken] replaces. A new session is given its ID here or when
// it is first saved; an ID read from a new session that this response does
// not save is not kept.
func (m *Manager) ID(ctx context.Context) string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	if st.d.p.id == [idLen]byte{} {
		rand.Read(st.d.p.id[:])
	}
	return (&Values{&st.d.p}).ID()
}

// Deadline returns when the session expires at the latest (its absolute
// lifetime; an idle timeout may end it sooner).
func (m *Manager) Deadline(ctx context.Context) time.Time {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	return time.Unix(st.d.p.expires, 0)
}

// GetJSON decodes the value for key into dst, a pointer, through JSON. It
// reports false if key is missing. Use it for values of types other than the
// typed getters', which come back from the cookie as JSON.
func (m *Manager) GetJSON(ctx context.Context, key string, dst any) (bool, error) {
	v := m.Get(ctx, key)
	if v == nil && !m.Exists(ctx, key) {
		return false, nil
	}
	raw, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return true, err
		}
	}
	return true, json.Unmarshal(raw, dst)
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

// ID returns the session's ID, as [Manager.ID] does.
func (v *Values) ID() string {
	return base64.RawURLEncoding.EncodeToString(v.p.id[:])
}

// Issued returns when the session was created or last renewed with
// [Manager.RenewToken], to the second.
func (v *Values) Issued() time.Time { return time.Unix(v.p.issued, 0) }

// Deadline returns when the session's absolute lifetime ends.
func (v *Values) Deadline() time.Time { return time.Unix(v.p.expires, 0) }

// Get returns the value for key, or nil, as [Manager.Get] does.
func (v *Values) Get(key string) any {
	if i, ok := v.p.find(key); ok {
		return v.p.entries[i].val
	}
	return nil
}
