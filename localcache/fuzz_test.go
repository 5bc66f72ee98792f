package localcache

import (
	"net/http"
	"net/url"
	"testing"
)

// FuzzQueryKey checks that the fast path for already canonical queries
// gives exactly the key the slow path (parse, then Encode) gives.
func FuzzQueryKey(f *testing.F) {
	for _, q := range []string{"", "a=1", "a=1&b=2", "b=2&a=1", "a=1&a=0", "a", "a=&b=", "a=%41", "a+b=c", "&&", "a=1;b=2", "x=y=z", "~=."} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, ok := makeKey("http", "h", "/p", q)
		v, err := url.ParseQuery(q)
		if err != nil {
			if ok && !canonicalQuery(q) {
				t.Fatalf("%q: key %q for a query that does not parse", q, got)
			}
			return
		}
		if want := "http://h/p?" + v.Encode(); !ok || got != want {
			t.Fatalf("%q: key %q, %v; want %q", q, got, ok, want)
		}
	})
}

// FuzzCacheControl checks the Cache-Control and Vary parsers never panic
// and that no-store is never lost when it is present as its own directive.
func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", "no-store", `private="a,b", max-age=1`, `no-cache="x\"y", s-maxage=5`, "max-age=1, max-age=2", "MAX-AGE = 7", `"`, `\`, ",,,", "max-age=99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"Cache-Control": {s}, "Vary": {s}}
		parseCacheControl(h)
		varyNames(h)
		etagMatch(s, `"x"`)
		h["Cache-Control"] = []string{s, "no-store"}
		if !parseCacheControl(h).noStore {
			t.Fatalf("no-store lost after %q", s)
		}
	})
}
