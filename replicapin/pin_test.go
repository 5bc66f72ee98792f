package replicapin

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "0/0", want: 0},
		{in: "0/3000060", want: 0x3000060},
		{in: "16/B374D848", want: 0x16_B374D848},
		{in: "ffffffff/ffffffff", want: 1<<64 - 1},
		{in: "FFFFFFFF/FFFFFFFF", want: 1<<64 - 1},
		{in: "", wantErr: true},
		{in: "0", wantErr: true},
		{in: "/0", wantErr: true},
		{in: "0/", wantErr: true},
		{in: "0/0/0", wantErr: true},
		{in: "100000000/0", wantErr: true},
		{in: "0/100000000", wantErr: true},
		{in: "-1/0", wantErr: true},
		{in: "+1/0", wantErr: true},
		{in: "0x1/0", wantErr: true},
		{in: " 1/0", wantErr: true},
		{in: "g/0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseLSN(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseLSN(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseLSN(%q) = %#x, want %#x", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/0", "16/B374D848", "ffffffff/ffffffff", "1/", "/", "0/0/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		off, err := parseLSN(s)
		if err != nil {
			return
		}
		// A parsed LSN prints back to the same number.
		p := Position{Offset: off}.String()
		p = p[:bytes.IndexByte([]byte(p), '@')]
		again, err := parseLSN(p)
		if err != nil || again != off {
			t.Fatalf("parseLSN(%q) = %#x; formatted %q parses to %#x, %v", s, off, p, again, err)
		}
	})
}

var testKey = bytes.Repeat([]byte("k"), 32)

func mustSealer(name string, key []byte) sealer {
	s, err := newSealer(name, key)
	if err != nil {
		panic(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	s := mustSealer("_pin", testKey)
	p := pin{pos: Position{Timeline: 3, Offset: 0x16_B374D848}, expires: 2_000}
	v := s.seal(p)
	if len(v) != sealedLen || sealedLen != 72 {
		t.Fatalf("sealed length %d (sealedLen %d), want 72", len(v), sealedLen)
	}
	got, err := s.open(v, 1_000, 10_000)
	if err != nil || got != p {
		t.Fatalf("open(seal(p)) = %+v, %v; want %+v", got, err, p)
	}
	unknown := pin{unknown: true, expires: 2_000}
	if got, err := s.open(s.seal(unknown), 1_000, 10_000); err != nil || got != unknown {
		t.Fatalf("open(seal(unknown)) = %+v, %v; want %+v", got, err, unknown)
	}
	// A pin sealed under a longer MaxPin is cut back.
	if got, _ := s.open(v, 1_000, 1_500); got.expires != 1_500 {
		t.Errorf("expires = %d, want capped to 1500", got.expires)
	}

	raw, _ := base64.RawURLEncoding.DecodeString(v)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	other := mustSealer("_pin", bytes.Repeat([]byte("x"), 32))
	otherName := mustSealer("_other", testKey)
	bad := []struct {
		name, v string
		now     int64
	}{
		{"empty", "", 1_000},
		{"expired", v, 2_000},
		{"long expired", v, 1 << 50},
		{"flipped version", flip(0), 1_000},
		{"flipped flag", flip(1), 1_000},
		{"flipped timeline", flip(2), 1_000},
		{"flipped offset", flip(13), 1_000},
		{"flipped expiry", flip(21), 1_000},
		{"flipped mac", flip(len(raw) - 1), 1_000},
		{"truncated", v[:len(v)-1], 1_000},
		{"extended", v + "A", 1_000},
		{"padded", v + "=", 1_000},
		{"std base64", "+" + v[1:], 1_000},
		{"other key", other.seal(pin{pos: Position{Timeline: 3, Offset: 1 << 62}, expires: 1 << 62}), 1_000},
		{"other cookie name", otherName.seal(p), 1_000},
		{"garbage", strings.Repeat("%", 72), 1_000},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := s.open(tt.v, tt.now, 1<<62); err == nil {
				t.Errorf("open(%q) = %+v, nil; want an error", tt.v, got)
			}
		})
	}
}

func FuzzOpenPin(f *testing.F) {
	s := mustSealer("_pin", testKey)
	f.Add(s.seal(pin{pos: Position{Timeline: 1, Offset: 42}, expires: 5_000}))
	f.Add(s.seal(pin{unknown: true, expires: 5_000}))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, v string) {
		p, err := s.open(v, 1_000, 1<<62)
		if err != nil {
			return
		}
		// Only values this key sealed open, and they re-seal identically.
		if again := s.seal(p); again != v {
			t.Fatalf("open(%q) = %+v, which seals to %q", v, p, again)
		}
	})
}

func TestMerge(t *testing.T) {
	at := func(tl uint32, off uint64) pin { return pin{pos: Position{Timeline: tl, Offset: off}, expires: 9} }
	unknown := pin{unknown: true, expires: 9}
	tests := []struct {
		name     string
		old, cur pin
		want     pin
	}{
		{"newer write wins", at(1, 100), at(1, 200), at(1, 200)},
		{"never backwards", at(1, 300), at(1, 200), at(1, 300)},
		{"newer timeline wins", at(1, 300), at(2, 50), at(2, 50)},
		{"older timeline loses", at(2, 50), at(1, 300), at(2, 50)},
		{"unknown write wins", at(1, 300), unknown, unknown},
		{"known write replaces unknown", unknown, at(1, 200), at(1, 200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.old.expires = 1
			if got := merge(tt.old, tt.cur); got != tt.want {
				t.Errorf("merge(%+v, %+v) = %+v, want %+v", tt.old, tt.cur, got, tt.want)
			}
		})
	}
}

func TestPositionCovers(t *testing.T) {
	tests := []struct {
		replica, pin Position
		want         bool
	}{
		{Position{1, 100}, Position{1, 100}, true},
		{Position{1, 101}, Position{1, 100}, true},
		{Position{1, 99}, Position{1, 100}, false},
		{Position{2, 500}, Position{1, 100}, false},
		{Position{1, 500}, Position{2, 100}, false},
	}
	for _, tt := range tests {
		if got := tt.replica.Covers(tt.pin); got != tt.want {
			t.Errorf("%v.Covers(%v) = %v, want %v", tt.replica, tt.pin, got, tt.want)
		}
	}
}

// BenchmarkPin measures sealing a pin cookie (every writing response) and
// opening one (every request that carries a pin).
func BenchmarkPin(b *testing.B) {
	s := mustSealer("_pin", testKey)
	p := pin{pos: Position{Timeline: 3, Offset: 0x16_B374D848}, expires: 2_000}
	v := s.seal(p)
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.seal(p)
		}
	})
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.open(v, 1_000, 10_000); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestParsePosition(t *testing.T) {
	tests := []struct {
		in      string
		want    Position
		wantErr bool
	}{
		{in: "0/3000060@1", want: Position{Timeline: 1, Offset: 0x3000060}},
		{in: "16/B374D848@2", want: Position{Timeline: 2, Offset: 0x16_B374D848}},
		{in: "0/0@0", want: Position{}},
		{in: "FFFFFFFF/FFFFFFFF@4294967295", want: Position{Timeline: 1<<32 - 1, Offset: 1<<64 - 1}},
		{in: "0/0@4294967296", wantErr: true},
		{in: "0/0", wantErr: true},
		{in: "0/0@", wantErr: true},
		{in: "@1", wantErr: true},
		{in: "0/0@+1", wantErr: true},
		{in: "0/0@-1", wantErr: true},
		{in: "0/0@1@1", wantErr: true},
		{in: "0/0@ 1", wantErr: true},
		{in: "0/0@0x1", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePosition(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParsePosition(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil {
				var u Position
				if err := u.UnmarshalText([]byte(tt.in)); err != nil || u != tt.want {
					t.Errorf("UnmarshalText(%q) = %v, %v", tt.in, u, err)
				}
			}
		})
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0/3000060@1", "16/B374D848@2", "0/0@", "@", "1/1@99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		// A parsed position prints to a form that parses to it again.
		again, err := ParsePosition(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePosition(%q) = %v; its String %q parses to %v, %v", s, p, p.String(), again, err)
		}
	})
}
