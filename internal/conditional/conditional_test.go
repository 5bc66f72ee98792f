package conditional

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestParseDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"Sun Nov  6 08:49:37 1994", true},
		{"Sun, 06 Nov 1994 08:49:37 UTC", false},
		{"Sun, 06  Nov  1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 8:49:37 GMT", false},
		{"Sun 06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06-Nov-1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 08.49.37 GMT", false},
		{"Sun, 06 Nov 94 08:49:37 GMT", false},
		{"SUN, 06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06 NOV 1994 08:49:37 GMT", false},
		{"0", false},
		{"", false},
	} {
		got, ok := ParseDate(tc.in)
		if ok != tc.ok || ok && !got.Equal(want) {
			t.Errorf("ParseDate(%q) = %v, %v; want ok %v", tc.in, got, ok, tc.ok)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		a, b         string
		strong, weak bool
	}{
		{`"1"`, `"1"`, true, true},
		{`W/"1"`, `W/"1"`, false, true},
		{`W/"1"`, `"1"`, false, true},
		{`"1"`, `"2"`, false, false},
		{``, ``, false, false},
		{`1`, `1`, false, false},
	} {
		if got := StrongMatch(tc.a, tc.b); got != tc.strong {
			t.Errorf("StrongMatch(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.strong)
		}
		if got := WeakMatch(tc.a, tc.b); got != tc.weak {
			t.Errorf("WeakMatch(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.weak)
		}
	}
}

// TestEvaluate follows RFC 9110 §13.2.2's order of evaluation.
func TestEvaluate(t *testing.T) {
	lm := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	before, at, after := "Mon, 01 Jan 2024 00:00:00 GMT", "Tue, 02 Jan 2024 03:04:05 GMT", "Wed, 03 Jan 2024 00:00:00 GMT"
	for _, tc := range []struct {
		name    string
		method  string
		headers [][2]string
		want    Result
	}{
		{"none", "GET", nil, Proceed},
		{"inm match", "GET", [][2]string{{"If-None-Match", `"x"`}}, NotModified},
		{"inm weak match", "GET", [][2]string{{"If-None-Match", `W/"x"`}}, NotModified},
		{"inm list", "GET", [][2]string{{"If-None-Match", `"a", "b,c" , "x"`}}, NotModified},
		{"inm comma inside tag", "GET", [][2]string{{"If-None-Match", `"b,"x"`}}, Proceed},
		{"inm star", "GET", [][2]string{{"If-None-Match", `*`}}, NotModified},
		{"inm no match", "GET", [][2]string{{"If-None-Match", `"y"`}}, Proceed},
		{"inm beats ims", "GET", [][2]string{{"If-None-Match", `"y"`}, {"If-Modified-Since", after}}, Proceed},
		{"inm on POST", "POST", [][2]string{{"If-None-Match", `"x"`}}, PreconditionFailed},
		{"ims equal", "GET", [][2]string{{"If-Modified-Since", at}}, NotModified},
		{"ims later", "HEAD", [][2]string{{"If-Modified-Since", after}}, NotModified},
		{"ims earlier", "GET", [][2]string{{"If-Modified-Since", before}}, Proceed},
		{"ims invalid", "GET", [][2]string{{"If-Modified-Since", "yesterday"}}, Proceed},
		{"ims on POST", "POST", [][2]string{{"If-Modified-Since", after}}, Proceed},
		{"im strong match", "PUT", [][2]string{{"If-Match", `"x"`}}, Proceed},
		{"im weak fails", "PUT", [][2]string{{"If-Match", `W/"x"`}}, PreconditionFailed},
		{"im beats ius", "PUT", [][2]string{{"If-Match", `"x"`}, {"If-Unmodified-Since", before}}, Proceed},
		{"ius earlier", "PUT", [][2]string{{"If-Unmodified-Since", before}}, PreconditionFailed},
		{"ius later", "PUT", [][2]string{{"If-Unmodified-Since", after}}, Proceed},
		{"im fails before inm", "GET", [][2]string{{"If-Match", `"y"`}, {"If-None-Match", `"x"`}}, PreconditionFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			for _, h := range tc.headers {
				r.Header.Add(h[0], h[1])
			}
			if got := Evaluate(r, `"x"`, lm); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIfRange(t *testing.T) {
	lm := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		ifRange, etag string
		want          bool
	}{
		{"", `"x"`, true},
		{`"x"`, `"x"`, true},
		{`W/"x"`, `W/"x"`, false},
		{`"y"`, `"x"`, false},
		{"Tue, 02 Jan 2024 03:04:05 GMT", `"x"`, true},
		{"Tue, 02 Jan 2024 03:04:06 GMT", `"x"`, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.ifRange != "" {
			r.Header.Set("If-Range", tc.ifRange)
		}
		if got := IfRange(r, tc.etag, lm); got != tc.want {
			t.Errorf("If-Range %q vs %q: got %v, want %v", tc.ifRange, tc.etag, got, tc.want)
		}
	}
}

func FuzzParseDate(f *testing.F) {
	f.Add("Sun, 06 Nov 1994 08:49:37 GMT")
	f.Add("Sunday, 06-Nov-94 08:49:37 GMT")
	f.Add("Sun Nov  6 08:49:37 1994")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseDate(s)
		if !ok {
			return
		}
		if again, ok := ParseDate(got.Format("Mon, 02 Jan 2006 15:04:05 GMT")); !ok || !again.Equal(got) {
			t.Fatalf("%q parsed as %v, which does not round-trip", s, got)
		}
	})
}

func FuzzEvaluate(f *testing.F) {
	f.Add(`"a", W/"b"`, "Sun, 06 Nov 1994 08:49:37 GMT")
	f.Fuzz(func(t *testing.T, inm, ims string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("If-None-Match", inm)
		r.Header.Set("If-Modified-Since", ims)
		Evaluate(r, `"a"`, time.Now())
		IfRange(r, `"a"`, time.Now())
	})
}
