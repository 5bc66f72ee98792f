package thumbnail

import (
	"bytes"
	"testing"
)

func TestRenderCost(t *testing.T) {
	jpeg4000 := encodeJPEG(t, photo(400, 300), 80) // header says 400x300
	tests := []struct {
		name     string
		data     []byte
		complete bool
		sp       Spec
		cost     int64
		known    bool
	}{
		{"png 7000x7000", floodOnce()[:64], false, Spec{Width: 256}, 49_000_000, true},
		{"jpeg at 1/8", jpeg4000, true, Spec{Width: 30}, 400 * 300 / 64, true},
		{"jpeg at 1/2", jpeg4000, true, Spec{Width: 120}, 400 * 300 / 4, true},
		{"jpeg in full", jpeg4000, true, Spec{Width: 200, Height: 300}, 400 * 300, true},
		{"jpeg header cut short", jpeg4000[:100], false, Spec{Width: 30}, 0, false},
		{"jpeg header cut short, at the end", jpeg4000[:100], true, Spec{Width: 30}, maxCost, true},
		{"html", []byte("<!doctype html><html>"), false, Spec{Width: 30}, 0, true},
		{"too short to tell", []byte("GIF8"), false, Spec{Width: 30}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cost, known := renderCost(tt.data, tt.complete, tt.sp, maxCost)
			if cost != tt.cost || known != tt.known {
				t.Errorf("got %d, %v; want %d, %v", cost, known, tt.cost, tt.known)
			}
		})
	}
}

const maxCost = 1 << 40

// TestProbeReadsOnlyTheHeader: the probe stops once the header is read,
// leaving the rest of a large source for after the queue.
func TestProbeReadsOnlyTheHeader(t *testing.T) {
	png := floodOnce()
	head, cost, err := probe(&chunked{bytes.NewReader(png), 4096}, int64(len(png)), Spec{Width: 256}, maxCost)
	if err != nil || cost != 49_000_000 || len(head) != 4096 {
		t.Errorf("got %d bytes, cost %d, %v; want 4096 bytes, 49000000, nil", len(head), cost, err)
	}
}

// chunked returns at most n bytes per Read, like a network body.
type chunked struct {
	r *bytes.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// FuzzRenderCost: any bytes are priced without panicking, never below
// zero, and complete input is always priced.
func FuzzRenderCost(f *testing.F) {
	f.Add(floodOnce()[:64], true)
	f.Add(encodeJPEG(f, photo(48, 32), 80), true)
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), false)
	f.Add([]byte("GIF89a\x01\x00\x01\x00"), true)
	f.Fuzz(func(t *testing.T, data []byte, complete bool) {
		cost, known := renderCost(data, complete, Spec{Width: 100}, maxCost)
		if cost < 0 || (complete && !known) {
			t.Fatalf("got %d, %v for complete=%v", cost, known, complete)
		}
	})
}
