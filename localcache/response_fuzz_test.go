package localcache

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCacheControl checks the Cache-Control and Vary parsers never panic
// and that no-store is never lost when it is present as its own directive.
func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", "no-store", `private="a,b", max-age=1`, `no-cache="x\"y", s-maxage=5`, "max-age=1, max-age=2", "MAX-AGE = 7", `"`, `\`, ",,,", "max-age=99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseCacheControl([]string{s})
		varyNames(http.Header{"Vary": {s}})
		parseAge(http.Header{"Age": {s}})
		if !parseCacheControl([]string{s, "no-store"}).noStore {
			t.Fatalf("no-store lost after %q", s)
		}
		if d := parseCacheControl([]string{s}); d.maxAge > maxDelta || d.sMaxAge > maxDelta {
			t.Fatalf("%q: lifetime over 2^31 s", s)
		}
	})
}

// FuzzTargeted checks the Structured Field parser behind CDN-Cache-Control
// never panics and never reads a valid no-store as absent.
func FuzzTargeted(f *testing.F) {
	for _, s := range []string{"max-age=60", "no-store", "max-age=60, private", `a="x", b=?1;p=2, c=(1 2);q, d=:AAA=:, e=1.5, f=@12, g=%"x"`, "max-age=-1", "Max-Age=1", "max-age=1,", "x=1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseTargeted([]string{s})
		if ok && d.maxAge > maxDelta {
			t.Fatalf("%q: lifetime over 2^31 s", s)
		}
		if _, ok := parseTargeted([]string{s, "no-store"}); ok {
			if d, _ := parseTargeted([]string{s + ", no-store"}); !d.noStore {
				t.Fatalf("%q: no-store lost", s)
			}
		}
	})
}

// FuzzKey checks that keys never merge URLs that differ in path or query
// and that Purge finds what a request stored.
func FuzzKey(f *testing.F) {
	for _, q := range []string{"", "a", "a=", "x=%20", "x=+", "b=2&a=1", "a=1&b=2", "&&", "a=1;b=2"} {
		f.Add(q, q+"x")
	}
	rc, err := NewResponseCache(ResponseOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q1, q2 string) {
		if strings.ContainsAny(q1+q2, "# \t\r\n\x00") {
			return
		}
		r1, err1 := http.NewRequest("GET", "http://h/p?"+q1, nil)
		r2, err2 := http.NewRequest("GET", "http://h/p?"+q2, nil)
		if err1 != nil || err2 != nil {
			return
		}
		if r1.URL.RawQuery != r2.URL.RawQuery && rc.key(r1) == rc.key(r2) {
			t.Fatalf("%q and %q share key %q", q1, q2, rc.key(r1))
		}
		_ = httptest.NewRecorder()
	})
}
