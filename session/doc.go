// Package session keeps each client's session in a signed, encrypted cookie
// sealed with github.com/gorilla/securecookie, so any instance behind a load
// balancer can serve any request without a shared session store.
//
// The API is scs v2's (github.com/alexedwards/scs/v2): create a [Manager]
// with [New], mount [Manager.LoadAndSave] as middleware, and call the data
// methods ([Manager.Put], [Manager.GetString], [Manager.PopString],
// [Manager.RenewToken], [Manager.Destroy], [Manager.Status], …) with the
// request's context:
//
//	sessions := session.New(sharednothing.DeriveKey(secret, "session"))
//	sessions.Lifetime = 12 * time.Hour
//	mux.Handle("/", sessions.LoadAndSave(app))
//
//	// in a handler:
//	sessions.Put(r.Context(), "user_id", 42)
//	id := sessions.GetInt(r.Context(), "user_id")
//
// Coming from scs, New takes the key instead of setting Store, the cookie
// settings are a [sharednothing.Cookie] (Secure by default; Insecure for
// plain-HTTP development), ErrorFunc is called ErrorHandler, and two scs
// methods cannot exist without a server-side store: Iterate (there is no
// list of sessions) and deleting a session on the server (see Revocation).
//
// # Values
//
// [Manager.Get] returns nil, strings, []byte, bools, every integer and
// float type, time.Time and json.RawMessage with the type they were put
// with. Any other value (a struct, slice, map, pointer or named type) is
// stored as JSON, and Get returns it as json.RawMessage, in the request that
// put it and later: a type assertion such as Get(ctx, "user").(User) never
// succeeds. Read such values with [GetAs], which returns an error instead of
// a silent zero value.
//
// # What is in the cookie
//
// The cookie holds the session's ID ([Manager.Token]), issue time,
// absolute deadline, last activity, persistence flag and values, in a
// compact tagged binary format (never gob), encrypted with AES-256-CTR and
// authenticated with HMAC-SHA256 by securecookie, with the cookie name bound
// into the MAC. Both keys are derived with HKDF from the one key given to
// [New]. Opening a cookie checks, in order, its length and canonical form,
// the MAC (in constant time), then decrypts, then decodes. A missing,
// tampered, truncated, expired, foreign-key or garbage cookie gives an
// empty new session: never an error response, never a partial session.
//
// Expiry is enforced on the server from the sealed data, to the
// nanosecond: the absolute deadline ([Manager.Lifetime], moved by
// [Manager.RenewToken] and [Manager.SetDeadline]) and the idle timeout
// ([Manager.IdleTimeout]), counted from the last activity recorded in the
// cookie.
//
// # Keys and rotation
//
// Give [New] one key of at least 32 bytes, normally
// sharednothing.DeriveKey(secret, "session"). To rotate, deploy
// session.New(newKey, oldKey): cookies sealed with oldKey still open and
// are re-sealed with newKey on their next use (Stats().Resealed counts
// them). Once Lifetime has passed, drop oldKey; cookies not seen since then
// have expired anyway.
//
// # Cost
//
// Nothing happens until a handler uses the session: a request that never
// does gets no cookie work and no Set-Cookie. A response carries Set-Cookie
// only when [Manager.Status] says Modified or Destroyed: the session
// changed, was renewed, was sealed with a previous key, or its activity
// needs recording for the idle timeout (at most every IdleTimeout/10, and
// at least once a minute). A response whose session was used carries
// "Vary: Cookie".
//
// # Caches
//
// [Manager.LoadAndSave] tells the toolkit's response cache, mounted inside
// or outside it, which cookie carries the session and whether the handler
// read an empty session or a personal one, so a cached page is never served
// across sessions whatever the mounting order.
//
// # Size
//
// Browsers drop cookies over 4096 bytes, so the whole Set-Cookie header is
// measured. By default a session that does not fit is [ErrTooLarge]: the
// response becomes a 500 and the client keeps its previous cookie. With
// [Manager.MaxChunks] > 1 a large session is split across cookies named
// Name, Name.1, Name.2, … and joined again on read. Keep sessions small: a
// cookie travels with every request.
//
// # Sessions outside cookies
//
// [Manager.Load] and [Manager.Commit] carry a session in a header (an API
// token, a websocket handshake) or in custom middleware, with
// [Manager.WriteSessionCookie] to write the cookie as LoadAndSave would.
//
// # Revocation
//
// A stateless cookie session cannot be deleted by the server: until its
// deadline a copied cookie stays valid, including after [Manager.Destroy]
// (which only asks the browser to delete it) and after a password change.
// Where that matters, keep a little state per user, such as the time of
// their last "log out everywhere", and refuse older sessions in
// [Manager.Validate]:
//
//	sessions.Validate = func(ctx context.Context, v *session.Values) bool {
//		uid, _ := v.Get("user_id").(int)
//		return uid == 0 || v.Issued().After(revokedAt(ctx, uid))
//	}
//
// The revoking handler reads the user, records time.Now(), then calls
// [Manager.RenewToken], so its own session, issued after that instant, stays
// valid. Call RenewToken at every login too. Short lifetimes and idle
// timeouts narrow the window further.
//
// # Settings
//
// The Manager's fields are read on every request, as in scs, so they may
// be changed after LoadAndSave is mounted (between requests, not while
// requests run). LoadAndSave panics at mount time on invalid settings; an
// invalid change made later fails each request through ErrorHandler.
// [Manager.Stats] counts loaded, saved and rejected sessions, for expvar.
package session
