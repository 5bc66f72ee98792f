package localcache

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxDelta is the largest delta-seconds value acted on; larger ones mean
// this much (RFC 9111 §1.2.2).
const maxDelta = (1 << 31) * time.Second

// absent marks a duration directive that was not sent.
const absent = time.Duration(-1)

// directives holds the Cache-Control directives (request or response) that
// the cache acts on. Durations are absent (-1) when not sent.
type directives struct {
	noStore, noCache, private, public       bool
	mustRevalidate, proxyRevalidate         bool
	mustUnderstand, onlyIfCached, immutable bool

	// noCacheFields and privateFields are the field names of the qualified
	// forms (no-cache="a, b"): those fields are not stored, the rest is.
	noCacheFields, privateFields []string

	maxAge, sMaxAge     time.Duration
	maxStale, minFresh  time.Duration // request directives
	maxStaleAny         bool          // max-stale without a value
	staleWhile, staleIf time.Duration // RFC 5861
}

func newDirectives() directives {
	return directives{maxAge: absent, sMaxAge: absent, maxStale: absent, minFresh: absent, staleWhile: absent, staleIf: absent}
}

// parseCacheControl parses Cache-Control field lines (RFC 9111 §5.2):
// comma-separated directives, case-insensitive names, values as token or
// quoted-string, no whitespace around "=". Unknown directives are ignored. A
// max-age or s-maxage that is invalid (not delta-seconds) or sent twice with
// different values makes the response stale (a lifetime of 0), which RFC 9111
// §4.2.1 allows and which is the safe reading.
func parseCacheControl(lines []string) directives {
	d := newDirectives()
	for _, line := range lines {
		for line != "" {
			var part string
			part, line = nextDirective(line)
			part = strings.Trim(part, " \t")
			if part == "" {
				continue
			}
			name, value, hasValue := strings.Cut(part, "=")
			name = strings.ToLower(name)
			if hasValue && strings.HasPrefix(value, `"`) {
				var ok bool
				if value, ok = unquote(value); !ok {
					value = "\x00" // invalid: fails every parse below
				}
			}
			switch name {
			case "no-store":
				d.noStore = true
			case "no-cache":
				if hasValue {
					d.noCacheFields = append(d.noCacheFields, fieldNames(value)...)
				} else {
					d.noCache = true
				}
			case "private":
				if hasValue {
					d.privateFields = append(d.privateFields, fieldNames(value)...)
				} else {
					d.private = true
				}
			case "public":
				d.public = true
			case "must-revalidate":
				d.mustRevalidate = true
			case "proxy-revalidate":
				d.proxyRevalidate = true
			case "must-understand":
				d.mustUnderstand = true
			case "only-if-cached":
				d.onlyIfCached = true
			case "immutable":
				d.immutable = true
			case "max-age":
				setDelta(&d.maxAge, value, hasValue, true)
			case "s-maxage":
				setDelta(&d.sMaxAge, value, hasValue, true)
			case "max-stale":
				if !hasValue {
					d.maxStaleAny = true
				} else {
					setDelta(&d.maxStale, value, true, false)
				}
			case "min-fresh":
				setDelta(&d.minFresh, value, hasValue, false)
			case "stale-while-revalidate":
				setDelta(&d.staleWhile, value, hasValue, false)
			case "stale-if-error":
				setDelta(&d.staleIf, value, hasValue, false)
			}
		}
	}
	return d
}

// setDelta stores a delta-seconds directive value. For freshness
// directives (strict) an invalid or conflicting value means 0 (stale); for
// the others an invalid value is ignored and the first one wins.
func setDelta(p *time.Duration, value string, hasValue, strict bool) {
	v, ok := parseDelta(value)
	switch {
	case !hasValue || !ok:
		if strict {
			*p = 0
		}
	case *p == absent:
		*p = v
	case *p != v && strict:
		*p = 0
	}
}

// parseDelta parses delta-seconds (1*DIGIT), capping it at 2^31 seconds.
func parseDelta(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<31 {
			n = n*10 + int64(c-'0')
		}
	}
	return time.Duration(min(n, 1<<31)) * time.Second, true
}

// parseAge parses the Age field: the first member of its first line, as
// delta-seconds. An invalid value is ignored (0), which RFC 9111 §5.1
// permits and which only errs towards serving fresher.
func parseAge(h http.Header) time.Duration {
	lines := h["Age"]
	if len(lines) == 0 {
		return 0
	}
	first, _, _ := strings.Cut(lines[0], ",")
	age, _ := parseDelta(strings.Trim(first, " \t"))
	return age
}

// nextDirective splits off the first comma-separated directive of s,
// skipping commas inside quoted strings.
func nextDirective(s string) (part, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// unquote decodes a quoted-string that makes up all of s.
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	s = s[1 : len(s)-1]
	if !strings.ContainsAny(s, `\"`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			return "", false
		case '\\':
			i++
			if i == len(s) {
				return "", false
			}
		}
		b.WriteByte(s[i])
	}
	return b.String(), true
}

// fieldNames splits a quoted list of field names into canonical names.
func fieldNames(s string) []string {
	var names []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			names = append(names, http.CanonicalHeaderKey(f))
		}
	}
	return names
}

// varyNames returns the canonical, sorted, de-duplicated header names of
// h's Vary lines, and whether one of them is "*".
func varyNames(h http.Header) (names []string, star bool) {
	for _, line := range h["Vary"] {
		for f := range strings.SplitSeq(line, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			if f == "*" {
				return nil, true
			}
			names = append(names, http.CanonicalHeaderKey(f))
		}
	}
	if len(names) > 1 {
		slices.Sort(names)
		j := 1
		for i := 1; i < len(names); i++ {
			if names[i] != names[j-1] {
				names[j] = names[i]
				j++
			}
		}
		names = names[:j]
	}
	return names, false
}
