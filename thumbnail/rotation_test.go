package thumbnail

import (
	"bytes"
	"net/http"
	"testing"
)

func TestPreviousKeysAcceptOldSignatures(t *testing.T) {
	oldKey := bytes.Repeat([]byte{'o'}, 32)
	newKey := bytes.Repeat([]byte{'n'}, 32)
	spec := Spec{Width: 40, Height: 40}
	src := Dir(fixtureDir(t))
	signedOld := newHandler(t, Options{Source: src, Key: oldKey}).URL("photo.jpg", spec)
	signedNew := newHandler(t, Options{Source: src, Key: newKey}).URL("photo.jpg", spec)
	signedOther := newHandler(t, Options{Source: src, Key: bytes.Repeat([]byte{'x'}, 32)}).URL("photo.jpg", spec)

	rotating := newHandler(t, Options{Source: src, Key: newKey, PreviousKeys: [][]byte{oldKey}})
	tests := []struct {
		name string
		h    *Handler
		url  string
		want int
	}{
		{"new key", rotating, signedNew, http.StatusOK},
		{"previous key", rotating, signedOld, http.StatusOK},
		{"unknown key", rotating, signedOther, http.StatusForbidden},
		{"old key dropped", newHandler(t, Options{Source: src, Key: newKey}), signedOld, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := get(tt.h, "GET", tt.url).StatusCode; got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	if got := rotating.URL("photo.jpg", spec); got != signedNew {
		t.Errorf("URL signed with %q, want the new key's %q", got, signedNew)
	}
	if _, err := New(Options{Source: src, Key: newKey, PreviousKeys: [][]byte{[]byte("short")}}); err == nil {
		t.Error("a short previous key was accepted")
	}
}
