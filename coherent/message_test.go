package coherent

import (
	"slices"
	"strings"
	"testing"
)

func TestBodiesRoundTrip(t *testing.T) {
	long := strings.Repeat("é", 5000) // 10000 bytes: too long for one payload
	tests := []struct {
		name  string
		items []Item
		want  []Item // after the trip; nil means items
		n     int    // payloads
	}{
		{"one key", []Item{{'k', "users", "42"}}, nil, 1},
		{"every op", []Item{{'k', "users", "42"}, {'u', "pages", "https://x/a?b=1"}, {'t', "pages", "photos"}, {'a', "users", ""}, {'h', "abc", "7"}}, nil, 1},
		{"spaces, newlines, percent, bytes", []Item{{'k', "c c", "a b\nc%d\x00\xff"}}, nil, 1},
		{"split", slices.Repeat([]Item{{'k', "users", strings.Repeat("x", 100)}}, 200), nil, 3},
		{"too long becomes all", []Item{{'k', "users", "a"}, {'k', "users", long}}, []Item{{'k', "users", "a"}, {'a', "users", ""}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := bodies(tt.items)
			if len(bs) != tt.n {
				t.Errorf("got %d payloads, want %d", len(bs), tt.n)
			}
			var got []Item
			for _, b := range bs {
				payload := header(Position{Timeline: 3, Offset: 0xFFFFFFFF_FFFFFFFF}) + "\no 0123456789ab s" + b
				if len(payload) > maxPayload {
					t.Fatalf("payload of %d bytes, want at most %d", len(payload), maxPayload)
				}
				m, err := decode(payload)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if !m.resolved || m.pos != (Position{Timeline: 3, Offset: 0xFFFFFFFF_FFFFFFFF}) || m.origin != "0123456789ab" {
					t.Errorf("got position %v, %v, origin %q", m.pos, m.resolved, m.origin)
				}
				got = append(got, m.items...)
			}
			want := tt.want
			if want == nil {
				want = tt.items
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		payload string
		ok      bool
		pos     Position
		items   int
	}{
		{"c1 -\nk users 1", true, Position{}, 1},
		{"c1 00000002 16/B374D848\nt pages a\nu pages /x", true, Position{Timeline: 2, Offset: 0x16_B374D848}, 2},
		{"c1 00000001 0/1", true, Position{Timeline: 1, Offset: 1}, 0},
		{"", false, Position{}, 0},
		{"c2 -\nk users 1", false, Position{}, 0},
		{"c1 1 0/1", false, Position{}, 0},
		{"c1 00000001 01/", false, Position{}, 0},
		{"c1 00000001 123456789/0", false, Position{}, 0},
		{"c1 -\nx users 1", false, Position{}, 0},
		{"c1 -\nk  1", false, Position{}, 0},
		{"c1 -\nk users 1 2", false, Position{}, 0},
		{"c1 -\nk users %4", false, Position{}, 0},
		{"c1 -\nk users %zz", false, Position{}, 0},
		{"c1 -\n", false, Position{}, 0},
	}
	for _, tt := range tests {
		m, err := decode(tt.payload)
		if (err == nil) != tt.ok {
			t.Errorf("decode(%q): err %v, want ok=%v", tt.payload, err, tt.ok)
			continue
		}
		if tt.ok && (m.pos != tt.pos || len(m.items) != tt.items) {
			t.Errorf("decode(%q) = %v, %d items; want %v, %d", tt.payload, m.pos, len(m.items), tt.pos, tt.items)
		}
	}
}

// FuzzDecode: decoding never panics, and whatever decodes re-encodes to
// a payload that decodes to the same items.
func FuzzDecode(f *testing.F) {
	f.Add("c1 -\nk users 1")
	f.Add("c1 00000002 16/B374D848\nt pages a%20b\nu pages /x\na users \nh abc 1")
	f.Fuzz(func(t *testing.T, payload string) {
		m, err := decode(payload)
		if err != nil {
			return
		}
		if len(m.items) == 0 {
			return
		}
		bs := bodies(m.items)
		var got []Item
		for _, b := range bs {
			m2, err := decode(header(m.pos) + b)
			if err != nil {
				t.Fatalf("re-encoded payload does not decode: %v", err)
			}
			got = append(got, m2.items...)
		}
		if !slices.Equal(got, m.items) {
			t.Fatalf("round trip: got %v, want %v", got, m.items)
		}
	})
}

// FuzzEscape: any key survives the trip.
func FuzzEscape(f *testing.F) {
	f.Add("a b\n%\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		e := escape(s)
		if strings.ContainsAny(e, " \n\x00") {
			t.Fatalf("escape(%q) = %q holds a separator", s, e)
		}
		got, err := unescape(e)
		if err != nil || got != s {
			t.Fatalf("unescape(escape(%q)) = %q, %v", s, got, err)
		}
	})
}
