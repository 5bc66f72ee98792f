package sharednothing

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Cookie sets the name and attributes of a cookie the toolkit sends: the
// session cookie ([session.Manager]) and the pin cookie
// ([replicapin.Options]). Its zero value is safe: Secure and HttpOnly are
// always on unless Insecure is set, SameSite is Lax, Path is "/" and the
// cookie is host-only. Persist is the one field whose default each package
// states ([session.New] sets it, as scs does).
//
// The same type, defaults and checks serve every package, so a setting
// means the same thing wherever it appears.
type Cookie struct {
	// Name is the cookie's name; each package states its default. A name
	// starting with "__Host-" (any case) must be Secure, have Path "/" and no
	// Domain; one starting with "__Secure-" must be Secure.
	Name string

	// Domain is the Domain attribute; empty (the default) means host-only,
	// which is what a site should want unless it shares the cookie with
	// subdomains.
	Domain string

	// Path is the Path attribute; empty means "/".
	Path string

	// SameSite is the SameSite attribute; 0 means http.SameSiteLaxMode.
	// http.SameSiteNoneMode requires Secure (Insecure false).
	SameSite http.SameSite

	// Partitioned sets the Partitioned attribute (CHIPS); it requires
	// Secure (Insecure false).
	Partitioned bool

	// Insecure leaves the Secure attribute off, so the cookie also travels
	// over plain HTTP. Set it only for local development over http://.
	Insecure bool

	// Persist sends Expires and Max-Age, so the cookie outlives the
	// browser session. Without it the browser drops the cookie when it
	// closes. The server enforces expiry either way, from the signed value.
	Persist bool
}

// WithDefaults returns c with its zero fields replaced by the defaults:
// name (when c.Name is empty), Path "/" and SameSite Lax.
func (c Cookie) WithDefaults(name string) Cookie {
	if c.Name == "" {
		c.Name = name
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.SameSite == 0 {
		c.SameSite = http.SameSiteLaxMode
	}
	return c
}

// Check reports settings that browsers would refuse: an invalid name, path
// or domain, a "__Host-" or "__Secure-" prefix (matched case-insensitively,
// as RFC 6265bis does) without what it requires, SameSite=None or
// Partitioned without Secure. Check is meant for start-up: the packages
// call it from their constructors.
func (c Cookie) Check() error {
	c = c.WithDefaults(c.Name)
	if c.Name == "" {
		return errors.New("sharednothing: cookie name is empty")
	}
	probe := http.Cookie{Name: c.Name, Value: "x", Path: c.Path, Domain: c.Domain}
	if err := probe.Valid(); err != nil {
		return fmt.Errorf("sharednothing: cookie %q: %w", c.Name, err)
	}
	lower := strings.ToLower(c.Name)
	switch {
	case strings.HasPrefix(lower, "__host-") && (c.Insecure || c.Path != "/" || c.Domain != ""):
		return fmt.Errorf(`sharednothing: cookie %q: a "__Host-" cookie must be Secure, with Path "/" and no Domain`, c.Name)
	case strings.HasPrefix(lower, "__secure-") && c.Insecure:
		return fmt.Errorf(`sharednothing: cookie %q: a "__Secure-" cookie must be Secure`, c.Name)
	case c.SameSite == http.SameSiteNoneMode && c.Insecure:
		return fmt.Errorf("sharednothing: cookie %q: SameSite=None requires Secure", c.Name)
	case c.Partitioned && c.Insecure:
		return fmt.Errorf("sharednothing: cookie %q: Partitioned requires Secure", c.Name)
	}
	return nil
}

// HTTPCookie returns the cookie to send with value, expiring at expires (a
// zero expires, or Persist false, sends neither Expires nor Max-Age). It
// applies the defaults; call [Cookie.Check] once at start-up first.
func (c Cookie) HTTPCookie(value string, expires time.Time) *http.Cookie {
	c = c.WithDefaults(c.Name)
	hc := &http.Cookie{
		Name:        c.Name,
		Value:       value,
		Path:        c.Path,
		Domain:      c.Domain,
		HttpOnly:    true,
		Secure:      !c.Insecure,
		SameSite:    c.SameSite,
		Partitioned: c.Partitioned,
	}
	if c.Persist && !expires.IsZero() {
		hc.Expires = expires.UTC().Truncate(time.Second)
		hc.MaxAge = max(1, int(time.Until(expires).Round(time.Second)/time.Second))
	}
	return hc
}

// Deletion returns the cookie that tells the browser to delete c's cookie
// (same name, path and domain, "Max-Age=0" and Expires at the Unix epoch
// plus one second, as scs sends).
func (c Cookie) Deletion() *http.Cookie {
	hc := c.HTTPCookie("", time.Time{})
	hc.MaxAge = -1
	hc.Expires = time.Unix(1, 0)
	return hc
}
