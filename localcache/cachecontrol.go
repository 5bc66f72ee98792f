package localcache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// directives holds the Cache-Control response directives a shared cache
// acts on. A directive with a field list (private="Set-Cookie") counts as the
// unqualified one, which is the conservative reading.
type directives struct {
	noStore, noCache, private, public bool
	maxAge, sMaxAge                   time.Duration // -1: absent
}

// parseCacheControl parses every Cache-Control line of h. Unknown
// directives are ignored; a malformed or repeated max-age or s-maxage makes
// the response uncacheable (RFC 9111 §4.2.1: treat as stale), reported as
// no-store.
func parseCacheControl(h http.Header) directives {
	d := directives{maxAge: -1, sMaxAge: -1}
	for _, line := range h.Values("Cache-Control") {
		for line != "" {
			var part string
			part, line = nextDirective(line)
			name, value, _ := strings.Cut(part, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			value = strings.Trim(strings.TrimSpace(value), `"`)
			switch name {
			case "no-store":
				d.noStore = true
			case "no-cache":
				d.noCache = true
			case "private":
				d.private = true
			case "public":
				d.public = true
			case "max-age", "s-maxage":
				secs, err := strconv.ParseUint(value, 10, 32)
				p := &d.maxAge
				if name == "s-maxage" {
					p = &d.sMaxAge
				}
				if err != nil || *p >= 0 {
					d.noStore = true // invalid or conflicting: do not trust it
					continue
				}
				*p = time.Duration(secs) * time.Second
			}
		}
	}
	return d
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

// varyNames returns the canonical, sorted header names of h's Vary lines,
// and whether it is "*".
func varyNames(h http.Header) (names []string, star bool) {
	for _, line := range h.Values("Vary") {
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
		sortStrings(names)
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

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// etagMatch reports whether the If-None-Match value inm matches etag, by
// weak comparison (RFC 9110 §13.1.2).
func etagMatch(inm, etag string) bool {
	if etag == "" {
		return false
	}
	etag = strings.TrimPrefix(etag, "W/")
	for inm != "" {
		var tag string
		tag, inm, _ = strings.Cut(inm, ",")
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
