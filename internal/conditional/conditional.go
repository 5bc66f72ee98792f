// Package conditional evaluates HTTP conditional requests (RFC 9110 §13)
// against a representation's validators, once for the whole toolkit: the
// response cache and thumbnail answer If-None-Match, If-Modified-Since,
// If-Match, If-Unmodified-Since and If-Range through it.
package conditional

import (
	"net/http"
	"strings"
	"time"
)

// Result is the outcome of [Evaluate].
type Result int

const (
	// Proceed means no precondition stopped the request: send the
	// representation (or perform the method).
	Proceed Result = iota
	// NotModified means answer 304 Not Modified (GET and HEAD only).
	NotModified
	// PreconditionFailed means answer 412 Precondition Failed.
	PreconditionFailed
)

// Evaluate applies r's preconditions to a representation with the entity
// tag etag (quoted, possibly W/-prefixed; "" for none) and modification
// time modified (zero for unknown), in the order RFC 9110 §13.2.2 gives:
// If-Match, else If-Unmodified-Since; then If-None-Match, else
// If-Modified-Since (the latter only for GET and HEAD). A condition whose
// header cannot be parsed is ignored, as §13.1 asks.
func Evaluate(r *http.Request, etag string, modified time.Time) Result {
	h := r.Header
	if im := h["If-Match"]; len(im) > 0 {
		if !listMatch(im, etag, true) {
			return PreconditionFailed
		}
	} else if ius := h["If-Unmodified-Since"]; len(ius) > 0 && !modified.IsZero() {
		if t, ok := ParseDate(ius[0]); ok && modified.After(t) {
			return PreconditionFailed
		}
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if inm := h["If-None-Match"]; len(inm) > 0 {
		if listMatch(inm, etag, false) {
			if get {
				return NotModified
			}
			return PreconditionFailed
		}
		return Proceed
	}
	if ims := h["If-Modified-Since"]; get && len(ims) > 0 && !modified.IsZero() {
		if t, ok := ParseDate(ims[0]); ok && !modified.After(t) {
			return NotModified
		}
	}
	return Proceed
}

// IfRange reports whether a Range request may be answered with a part of
// the representation: true if r has no If-Range, or if its entity tag
// matches etag by strong comparison, or its date equals modified exactly
// (RFC 9110 §13.1.5). False means send the whole representation.
func IfRange(r *http.Request, etag string, modified time.Time) bool {
	v := r.Header.Get("If-Range")
	if v == "" {
		return true
	}
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		return StrongMatch(v, etag)
	}
	t, ok := ParseDate(v)
	return ok && !modified.IsZero() && t.Equal(modified)
}

// StrongMatch reports whether two entity tags are equal and both strong
// (RFC 9110 §8.8.3.2).
func StrongMatch(a, b string) bool {
	return a != "" && !strings.HasPrefix(a, "W/") && a == b && validTag(a)
}

// WeakMatch reports whether two entity tags have the same opaque-tag,
// either or both possibly weak (RFC 9110 §8.8.3.2).
func WeakMatch(a, b string) bool {
	a, b = strings.TrimPrefix(a, "W/"), strings.TrimPrefix(b, "W/")
	return a != "" && a == b && validTag(a)
}

// validTag reports whether t (without W/) is a quoted opaque-tag.
func validTag(t string) bool {
	if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' {
		return false
	}
	for i := 1; i < len(t)-1; i++ {
		if c := t[i]; c == '"' || c < 0x21 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// listMatch reports whether an If-Match (strong) or If-None-Match (weak)
// field, given as its lines, matches etag. "*" matches whenever a
// representation exists, which the caller's having validators implies.
func listMatch(lines []string, etag string, strong bool) bool {
	for _, line := range lines {
		for line != "" {
			var tag string
			tag, line = nextTag(line)
			if tag == "*" {
				return true
			}
			if strong && StrongMatch(tag, etag) || !strong && WeakMatch(tag, etag) {
				return true
			}
		}
	}
	return false
}

// nextTag splits the first member off a comma-separated entity-tag list.
// Commas inside the quotes of a tag do not split it.
func nextTag(s string) (tag, rest string) {
	s = strings.TrimLeft(s, " \t,")
	i := 0
	if strings.HasPrefix(s, "W/") {
		i = 2
	}
	if i < len(s) && s[i] == '"' {
		if j := strings.IndexByte(s[i+1:], '"'); j >= 0 {
			end := i + 1 + j + 1
			return s[:end], strings.TrimLeft(s[end:], " \t")
		}
	}
	tag, rest, _ = strings.Cut(s, ",")
	return strings.TrimSpace(tag), rest
}

// ParseDate parses an HTTP-date strictly (RFC 9110 §5.6.7): the preferred
// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and the two obsolete forms
// every recipient must accept, rfc850-date ("Sunday, 06-Nov-94 08:49:37
// GMT") and asctime-date ("Sun Nov  6 08:49:37 1994"). Names are matched
// case-sensitively, as the grammar says; anything else (one-digit hours,
// doubled spaces, "UTC") is not a date. A two-digit year that would be more
// than 50 years ahead is taken as the past century.
func ParseDate(s string) (time.Time, bool) {
	var layout string
	switch {
	case len(s) == 29 && s[3] == ',':
		layout = time.RFC1123 // "Mon, 02 Jan 2006 15:04:05 MST"
		if s[26:] != "GMT" {
			return time.Time{}, false
		}
	case len(s) == 24 && s[3] == ' ':
		layout = time.ANSIC // "Mon Jan _2 15:04:05 2006"
	case strings.Contains(s, ", ") && strings.HasSuffix(s, " GMT"):
		layout = time.RFC850 // "Monday, 02-Jan-06 15:04:05 MST"
	default:
		return time.Time{}, false
	}
	t, err := time.Parse(layout, s)
	if err != nil || t.Format(layout) != s {
		return time.Time{}, false // round trip: rejects what Parse forgives
	}
	if layout == time.RFC850 && t.After(time.Now().AddDate(50, 0, 0)) {
		t = t.AddDate(-100, 0, 0)
	}
	return t.UTC(), true
}
