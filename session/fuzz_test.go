package session

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func fuzzManager() *Manager {
	m := New(keyA, keyB)
	m.MaxChunks = 3
	return m
}

// FuzzOpen sends arbitrary Cookie headers through the whole decode path:
// whatever arrives, the handler sees a session (maybe empty), never a panic,
// and the response is never a 500. Each input runs in a synctest bubble,
// whose clock always starts at 2000-01-01, so a sealed cookie in the corpus
// opens the same way whenever it is replayed.
func FuzzOpen(f *testing.F) {
	m := fuzzManager()
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		_ = m.Keys(ctx)
		io.WriteString(w, m.GetString(ctx, "user"))
	}))
	// Seeds: real cookies, chunked and not, plus garbage.
	for _, v := range []string{"ada", string(bytes.Repeat([]byte("x"), 3000))} {
		rec := httptest.NewRecorder()
		h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.Put(r.Context(), "user", v)
			m.Put(r.Context(), "n", 1)
		}))
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		var header string
		for _, c := range rec.Result().Cookies() {
			header += c.Name + "=" + c.Value + "; "
		}
		f.Add(header)
	}
	f.Add("session=")
	f.Add("session=2.abc; session.1=def")
	f.Add(`session="quoted"`)
	f.Fuzz(func(t *testing.T, header string) {
		synctest.Test(t, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", header)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			if sc := rec.Result().Header.Get("Set-Cookie"); sc != "" && rec.Body.Len() == 0 {
				t.Fatalf("read-only request on an empty session sent Set-Cookie %q", sc)
			}
			// The same bytes as a header-carried token (Load).
			_, token, _ := strings.Cut(header, "=")
			ctx, err := m.Load(context.Background(), token)
			if err != nil {
				t.Fatal(err)
			}
			_ = m.Keys(ctx)
			if m.Status(ctx) == Destroyed {
				t.Fatal("a loaded token is Destroyed")
			}
		})
	})
}

// FuzzPayload feeds arbitrary bytes to the payload decoder, which sits
// behind the MAC but must still never panic or over-allocate, and checks
// that whatever it accepts re-encodes stably.
func FuzzPayload(f *testing.F) {
	p := payload{id: [idLen]byte{1}, issued: 10, expires: 20, active: 15, entries: []entry{
		{"a", "s"}, {"b", []byte{1}}, {"c", 3}, {"d", time.Unix(5, 6).UTC()}, {"e", 1.5},
		{"f", true}, {"g", nil}, {"h", map[string]int{"x": 1}}, {"i", uint16(9)}, {"j", float32(2)},
	}}
	b, err := appendPayload(nil, &p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{payloadVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p1 payload
		if decodePayload(b, &p1) != nil {
			return
		}
		e1, err := appendPayload(nil, &p1)
		if err != nil {
			t.Fatalf("accepted payload does not re-encode: %v", err)
		}
		var p2 payload
		if err := decodePayload(e1, &p2); err != nil {
			t.Fatalf("re-encoded payload rejected: %v", err)
		}
		e2, _ := appendPayload(nil, &p2)
		if !bytes.Equal(e1, e2) {
			t.Fatalf("unstable encoding:\n%x\n%x", e1, e2)
		}
	})
}
