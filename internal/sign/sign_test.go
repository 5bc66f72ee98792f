package sign

import (
	"bytes"
	"testing"
)

func TestSignVerify(t *testing.T) {
	oldKey := bytes.Repeat([]byte{1}, 32)
	newKey := bytes.Repeat([]byte{2}, 32)
	old, err := New("test", "label", oldKey)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := New("test", "label", newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	if ok, wasOld := cur.Verify(cur.Sum(nil, msg), msg); !ok || wasOld {
		t.Errorf("own MAC: ok=%v old=%v, want true false", ok, wasOld)
	}
	if ok, wasOld := cur.Verify(old.Sum(nil, msg), msg); !ok || !wasOld {
		t.Errorf("previous key's MAC: ok=%v old=%v, want true true", ok, wasOld)
	}
	if ok, _ := old.Verify(cur.Sum(nil, msg), msg); ok {
		t.Error("a key that is not configured was accepted")
	}
	other, _ := New("test", "other label", newKey)
	if ok, _ := cur.Verify(other.Sum(nil, msg), msg); ok {
		t.Error("a MAC made for another label was accepted")
	}
	if ok, _ := cur.Verify(cur.Sum(nil, []byte("ab"), []byte("c")), []byte("a"), []byte("bc")); ok {
		t.Error("part boundaries are not bound into the MAC")
	}
	mac := cur.Sum(nil, msg)
	mac[0] ^= 1
	if ok, _ := cur.Verify(mac, msg); ok {
		t.Error("tampered MAC accepted")
	}
	if _, err := New("test", "l", []byte("short")); err == nil {
		t.Error("short key accepted")
	}
	if _, err := New("test", "l", newKey, []byte("short")); err == nil {
		t.Error("short previous key accepted")
	}
}

func TestSignAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	s, _ := New("test", "label", bytes.Repeat([]byte{3}, 32))
	var payload [22]byte
	var mac [Size]byte
	s.Sum(mac[:0], payload[:]) // warm the pool
	if n := testing.AllocsPerRun(100, func() { s.Sum(mac[:0], payload[:]) }); n > 0 {
		t.Errorf("Sum allocates %v times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.Verify(mac[:], payload[:]) }); n > 0 {
		t.Errorf("Verify allocates %v times per call, want 0", n)
	}
}

func BenchmarkSign(b *testing.B) {
	s, _ := New("test", "label", bytes.Repeat([]byte{3}, 32))
	var payload [22]byte
	var mac [Size]byte
	b.ReportAllocs()
	for b.Loop() {
		s.Sum(mac[:0], payload[:])
	}
}
