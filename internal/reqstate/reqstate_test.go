package reqstate

import (
	"net/http/httptest"
	"testing"
)

func TestEnsureReusesState(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r1, s1 := Ensure(r)
	r2, s2 := Ensure(r1)
	if s1 != s2 || r1 != r2 {
		t.Fatal("Ensure on a request that has a State made another one")
	}
	if From(r.Context()) != nil {
		t.Fatal("Ensure changed the original request's context")
	}
}

func TestUsedStrongestWins(t *testing.T) {
	var s State
	s.Used(Personal)
	s.Used(Anonymous)
	if got := s.Snapshot().Use; got != Personal {
		t.Errorf("got %v, want Personal", got)
	}
	var nilState *State
	nilState.Used(Personal) // must not panic
	nilState.Bypass()
	nilState.AddCookie(Cookie{Name: "x"})
}

func TestCarries(t *testing.T) {
	cookies := []Cookie{{Name: "session", Kind: Session}, {Name: "_pin", Kind: Pin}}
	tests := []struct {
		header string
		kinds  []Kind
		want   bool
	}{
		{"", nil, false},
		{"other=1", nil, false},
		{"session=abc", nil, true},
		{"a=1; session.2=x", []Kind{Session}, true},
		{"session.x=1", nil, false},
		{"sessionx=1", nil, false},
		{"_pin=1", []Kind{Session}, false},
		{"_pin=1", []Kind{Pin}, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.header != "" {
			r.Header.Set("Cookie", tt.header)
		}
		if got := Carries(r, cookies, tt.kinds...); got != tt.want {
			t.Errorf("Carries(%q, %v) = %v, want %v", tt.header, tt.kinds, got, tt.want)
		}
	}
}

func TestBypassed(t *testing.T) {
	var s State
	if s.Bypassed() {
		t.Fatal("a new State is bypassed")
	}
	s.Bypass()
	if !s.Bypassed() || !s.Snapshot().Bypass {
		t.Fatal("Bypass not recorded")
	}
	if (*State)(nil).Bypassed() {
		t.Fatal("a nil State is bypassed")
	}
}
