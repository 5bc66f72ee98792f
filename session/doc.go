// Package session keeps each client's session in a signed, encrypted cookie
// sealed with github.com/gorilla/securecookie, so any instance behind a load
// balancer can serve any request without a shared session store.
//
// The API follows github.com/alexedwards/scs/v2: create a [Manager] with
// [New], mount [Manager.LoadAndSave] as middleware, and call the data
// methods ([Manager.Put], [Manager.GetString], [Manager.PopString],
// [Manager.RenewToken], [Manager.Destroy], …) with the request's context.
// Moving from scs with a server-side store mostly means changing the
// constructor:
//
//	sessions := session.New(hashKey, blockKey) // 32 bytes each
//	sessions.Lifetime = 12 * time.Hour
//	mux.Handle("/", sessions.LoadAndSave(app))
//
//	// in a handler:
//	sessions.Put(r.Context(), "user_id", 42)
//	id := sessions.GetInt(r.Context(), "user_id")
//
// # What is in the cookie
//
// The cookie holds the session's ID, issue time, absolute deadline, last
// activity and values, encoded in a compact tagged binary format (never gob,
// so nothing depends on gob.Register), then encrypted with AES-256-CTR and
// authenticated with HMAC-SHA256 by securecookie, with the cookie name bound
// into the MAC. Opening a cookie checks, in order, its length, the MAC (in
// constant time), then decrypts, then decodes. A missing, tampered,
// truncated, expired, foreign-key or garbage cookie gives an empty new
// session: never an error response, never a partial session.
//
// Expiry is enforced on the server from the sealed data: the absolute
// deadline ([Manager.Lifetime]) is fixed when the session is created, and
// the idle timeout ([Manager.IdleTimeout]) counts from the last activity
// recorded in the cookie, refreshed at most once a minute.
//
// # Cost
//
// Nothing happens until a handler uses the session: a request that never
// does pays for one small allocation and gets no Set-Cookie. A response
// carries Set-Cookie only when the session changed, was renewed or
// destroyed, was sealed with an older key pair (it is then re-sealed with
// the newest), or its idle timeout needs refreshing. A response whose
// session was used carries "Vary: Cookie".
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
// # Revocation
//
// A stateless cookie session cannot be revoked by the server alone: until
// its deadline, a copied cookie stays valid, including after [Manager.Destroy]
// (which only asks the browser to delete it) and after a password change.
// Where that matters, keep a little state per user — for example the time of
// their last "log out everywhere" — and reject older sessions in
// [Manager.Validate]:
//
//	sessions.Validate = func(ctx context.Context, v *session.Values) bool {
//		uid, _ := v.Get("user_id").(int)
//		return uid == 0 || v.Issued().After(revokedBefore(ctx, uid))
//	}
//
// Call [Manager.RenewToken] at login so the session gets a new ID and issue
// time. Short lifetimes and idle timeouts narrow the window further.
//
// # Clock
//
// Expiry uses time.Now. The package's own tests substitute a clock through
// an unexported field; there is no exported clock setting.
package session
