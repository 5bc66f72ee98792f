package thumbnail

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var floodOnce = sync.OnceValue(func() []byte { return failingPNG(7000, 7000) })

// failingPNG returns a grayscale PNG declaring w×h pixels whose pixel data
// (all zero, so it compresses ~1000:1) is complete but whose IDAT checksum
// is wrong: a decoder inflates every pixel before it finds out. At
// 7000×7000 it is the ~50 KB upload of the flood in issue 15.
func failingPNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte, crcDelta uint32) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32()+crcDelta)
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8] = 8 // bit depth; colour type 0 (gray)
	chunk("IHDR", ihdr, 0)
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	row := make([]byte, 1+w) // filter byte + pixels
	for range h {
		zw.Write(row)
	}
	zw.Close()
	chunk("IDAT", z.Bytes(), 1) // the checksum fails, at the very end
	chunk("IEND", nil, 0)
	return b.Bytes()
}

// floodDir returns a directory with n copies of the failing PNG
// (flood-0.png, …) and a normal photo (victim.jpg).
func floodDir(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, "flood-"+strconv.Itoa(i)+".png"), floodOnce(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "victim.jpg"), encodeJPEG(t, photo(1600, 1200), 85), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFloodLeavesRoomForVictim replays issue 15's attack: 70 uploads of a
// PNG declaring 7000×7000 are requested at once on a machine with two
// render slots. Each flood render holds its slot until RenderTimeout (the
// gated source stands for a decode that takes that long), yet a victim's
// fresh thumbnail renders at once: heavy renders never take the last slot,
// fill at most half of the line, and the line serves the cheapest first.
// Before, the victim got 503 after 10 s.
func TestFloodLeavesRoomForVictim(t *testing.T) {
	floodOnce() // outside the bubble: real CPU time, not worth faking
	synctest.Test(t, func(t *testing.T) {
		const flood = 70
		src := newGatedSource(Dir(floodDir(t, flood)))
		src.slow = func(name string) bool { return strings.HasPrefix(name, "flood-") }
		h := newHandler(t, Options{Source: src, Concurrency: 2}) // QueueSize 64, QueueTimeout and RenderTimeout 10 s
		sp := Spec{Width: 256, Height: 256}

		statuses := make(chan int, flood)
		var wg sync.WaitGroup
		for i := range flood {
			wg.Go(func() { statuses <- get(h, "GET", h.URL("flood-"+strconv.Itoa(i)+".png", sp)).StatusCode })
		}
		synctest.Wait()
		s := h.Stats()
		t.Logf("flood in place: %d running, %d waiting, %d refused", s.Running, s.Waiting, s.QueueRejections)
		if s.Running != 1 || s.Waiting != 32 || s.QueueRejections != flood-33 {
			t.Errorf("flood: got %d running, %d waiting, %d refused; want 1, 32, %d", s.Running, s.Waiting, s.QueueRejections, flood-33)
		}

		start := time.Now()
		resp := get(h, "GET", h.URL("victim.jpg", sp))
		if took := time.Since(start); resp.StatusCode != 200 || took >= 2*time.Second {
			t.Fatalf("victim under the flood: got %d after %v, want 200 in under 2 s", resp.StatusCode, took)
		}
		if m, _ := decodeSize(t, body(t, resp)); m.Bounds().Dx() != 256 {
			t.Errorf("victim thumbnail is %v wide, want 256", m.Bounds().Dx())
		}

		// The flood drains: the running render passes RenderTimeout (422,
		// remembered), and no flood request is ever served an image.
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for s := range statuses {
			count[s]++
		}
		if count[200] != 0 || count[422] == 0 || count[422]+count[503] != flood {
			t.Errorf("flood statuses: %v; want only 422 and 503", count)
		}
	})
}

// TestRenderTimeout: a render that outlasts RenderTimeout is cancelled
// inside its source read, answered 422, and remembered for the source's
// version: the next request gets the same answer without opening it.
func TestRenderTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newGatedSource(Dir(fixtureDir(t)))
		h := newHandler(t, Options{Source: src, RenderTimeout: 2 * time.Second})
		start := time.Now()
		resp := get(h, "GET", h.URL("photo.jpg", Spec{Width: 50}))
		if resp.StatusCode != http.StatusUnprocessableEntity || time.Since(start) != 2*time.Second {
			t.Fatalf("got %d after %v, want 422 after the 2 s RenderTimeout", resp.StatusCode, time.Since(start))
		}
		if e := resp.Header.Get("X-Test-Error"); !strings.Contains(e, "render took too long") {
			t.Errorf("error: got %q", e)
		}
		if src.cancelled.Load() != 1 {
			t.Errorf("the source read was not cancelled")
		}
		start = time.Now()
		resp = get(h, "GET", h.URL("photo.jpg", Spec{Width: 80, Height: 80, Mode: Fill}))
		if resp.StatusCode != http.StatusUnprocessableEntity || time.Since(start) != 0 || src.opens.Load() != 1 {
			t.Errorf("again, another spec: got %d after %v with %d opens; want 422 at once, 1 open", resp.StatusCode, time.Since(start), src.opens.Load())
		}
		if s := h.Stats(); s.RememberedFailures != 1 || s.Failures["422"] != 2 || s.Renders != 1 {
			t.Errorf("stats: %+v", s)
		}
	})
}

// TestFailureRemembered renders the flood's PNG for real: the decoder
// inflates 49 megapixels and fails on the checksum (422); asking again, for
// any spec, costs a Stat and nothing more, until the source changes.
func TestFailureRemembered(t *testing.T) {
	dir := floodDir(t, 1)
	src := newGatedSource(Dir(dir))
	src.slow = func(string) bool { return false }
	h := newHandler(t, Options{Source: src})
	u := h.URL("flood-0.png", Spec{Width: 100})
	start := time.Now()
	if r := get(h, "GET", u); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("got %d, want 422", r.StatusCode)
	}
	first := time.Since(start)
	start = time.Now()
	for _, sp := range []Spec{{Width: 100}, {Width: 50, Format: PNG}, {Height: 20}} {
		if r := get(h, "GET", h.URL("flood-0.png", sp)); r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%v again: got %d, want 422", sp, r.StatusCode)
		}
	}
	t.Logf("first render %v, three remembered answers %v", first, time.Since(start))
	if n := src.opens.Load(); n != 1 {
		t.Errorf("source opened %d times, want 1", n)
	}
	if s := h.Stats(); s.RememberedFailures != 3 || s.Renders != 1 {
		t.Errorf("stats: %+v; want 3 remembered failures, 1 render", s)
	}
	// A new version of the source is tried again.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "flood-0.png"), later, later); err != nil {
		t.Fatal(err)
	}
	get(h, "GET", u)
	if n := src.opens.Load(); n != 2 {
		t.Errorf("after the source changed: %d opens, want 2", n)
	}
}
