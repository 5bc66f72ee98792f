package sharednothing

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCookieCheck(t *testing.T) {
	tests := []struct {
		name string
		c    Cookie
		ok   bool
	}{
		{"zero value with a name", Cookie{Name: "s"}, true},
		{"empty name", Cookie{}, false},
		{"bad name", Cookie{Name: "a b"}, false},
		{"__Host- ok", Cookie{Name: "__Host-s"}, true},
		{"__Host- with Domain", Cookie{Name: "__Host-s", Domain: "example.com"}, false},
		{"lower-case __host- with Domain", Cookie{Name: "__host-s", Domain: "example.com"}, false},
		{"__Host- with Path", Cookie{Name: "__Host-s", Path: "/app"}, false},
		{"__Host- insecure", Cookie{Name: "__Host-s", Insecure: true}, false},
		{"__SECURE- insecure", Cookie{Name: "__SECURE-s", Insecure: true}, false},
		{"SameSite=None insecure", Cookie{Name: "s", SameSite: http.SameSiteNoneMode, Insecure: true}, false},
		{"SameSite=None secure", Cookie{Name: "s", SameSite: http.SameSiteNoneMode}, true},
		{"Partitioned insecure", Cookie{Name: "s", Partitioned: true, Insecure: true}, false},
		{"insecure for local development", Cookie{Name: "s", Insecure: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Check()
			if (err == nil) != tt.ok {
				t.Errorf("Check() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestCookieZeroValueIsSecure(t *testing.T) {
	hc := Cookie{}.HTTPCookie("v", time.Now().Add(time.Hour))
	if !hc.Secure || !hc.HttpOnly || hc.SameSite != http.SameSiteLaxMode || hc.Path != "/" || hc.Domain != "" {
		t.Errorf("zero Cookie gave %s; want Secure, HttpOnly, SameSite=Lax, Path=/, host-only", hc)
	}
	if hc.MaxAge != 0 || !hc.Expires.IsZero() {
		t.Errorf("Persist false gave Max-Age %d, Expires %v; want neither", hc.MaxAge, hc.Expires)
	}
	p := Cookie{Persist: true}.HTTPCookie("v", time.Now().Add(time.Hour))
	if p.MaxAge < 3590 || p.MaxAge > 3600 {
		t.Errorf("Persist: Max-Age %d, want about 3600", p.MaxAge)
	}
	del := Cookie{Name: "s"}.Deletion().String()
	for _, want := range []string{"s=;", "Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:01 GMT"} {
		if !strings.Contains(del, want) {
			t.Errorf("Deletion() = %q, want it to contain %q", del, want)
		}
	}
}
