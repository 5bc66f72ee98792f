package sharednothing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sharednothing/sharednothing/internal/httperr"
)

func TestChainOrder(t *testing.T) {
	var got []string
	mw := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = append(got, name)
				next.ServeHTTP(w, r)
				got = append(got, "/"+name)
			})
		}
	}
	tests := []struct {
		name string
		mws  []func(http.Handler) http.Handler
		want string
	}{
		{"none", nil, "h"},
		{"one", []func(http.Handler) http.Handler{mw("a")}, "a h /a"},
		{"three", []func(http.Handler) http.Handler{mw("a"), mw("b"), mw("c")}, "a b c h /c /b /a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			h := Chain(tt.mws...)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got = append(got, "h") }))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			if s := strings.Join(got, " "); s != tt.want {
				t.Errorf("got %q, want %q", s, tt.want)
			}
		})
	}
}

func TestDeriveKey(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	a := DeriveKey(secret, "session")
	if len(a) != 32 {
		t.Fatalf("got %d bytes, want 32", len(a))
	}
	if !bytes.Equal(a, DeriveKey(secret, "session")) {
		t.Error("same inputs gave different keys")
	}
	seen := map[string]string{hex.EncodeToString(a): "session"}
	for _, p := range []string{"thumbnail", "replicapin", "", "session "} {
		k := hex.EncodeToString(DeriveKey(secret, p))
		if prev, dup := seen[k]; dup {
			t.Errorf("purposes %q and %q gave the same key", p, prev)
		}
		seen[k] = p
	}
	other := bytes.Repeat([]byte{8}, 32)
	if bytes.Equal(a, DeriveKey(other, "session")) {
		t.Error("different secrets gave the same key")
	}
	// Pinned vector: changing the derivation would log every user out.
	if got, want := hex.EncodeToString(a), goldenSessionKey; want != "" && got != want {
		t.Errorf("derivation changed: got %s, want %s", got, want)
	}
}

func TestDeriveKeyShortSecretPanics(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.HasPrefix(r.(string), "sharednothing:") {
			t.Fatalf("got panic %v, want a sharednothing: panic", r)
		}
	}()
	DeriveKey(make([]byte, 31), "session")
}

const goldenSessionKey = "1f1221dd5c64b7beb9832267eaf3cb1ff5579a9335ef810252b49f9faff0b1c4"

func TestErrorStatus(t *testing.T) {
	if got := ErrorStatus(errors.New("x")); got != http.StatusInternalServerError {
		t.Errorf("plain error: got %d, want 500", got)
	}
	err := fmt.Errorf("wrapped: %w", httperr.WithStatus(http.StatusRequestEntityTooLarge, errors.New("too big")))
	if got := ErrorStatus(err); got != http.StatusRequestEntityTooLarge {
		t.Errorf("wrapped status error: got %d, want 413", got)
	}
}
