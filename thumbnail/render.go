package thumbnail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharednothing/sharednothing/internal/flight"
)

// flightGroup coalesces concurrent requests for one thumbnail, and cancels
// its render when every one of them has gone.
type flightGroup = flight.Group[string, *entry]

// errEncode wraps failures to encode a thumbnail: the server's fault (500).
var errEncode = errors.New("thumbnail: encoding failed")

// failureKey names one version of a source in the failure memory.
func failureKey(name, version string) string { return version + "\x00" + name }

// remembered reports whether err says something about the source itself,
// whatever the spec, so that it is worth remembering for its version.
func remembered(err error) bool {
	return errors.Is(err, ErrSourceTooLarge) || errors.Is(err, ErrUnsupportedFormat) ||
		errors.Is(err, ErrCorruptImage) || errors.Is(err, ErrRenderTimeout)
}

// lookupOrRender returns the cached thumbnail or renders it, once per key
// however many requests ask at the same time. The render stops when every
// request waiting for it has gone.
//
// A source version that failed before fails again at once, without a
// read: remembered failures are looked up after the memory cache, so a hit
// costs nothing more.
func (h *Handler) lookupOrRender(ctx context.Context, key, etag, name, version string, sp Spec) (*entry, error) {
	if h.mem != nil {
		if e, ok := h.mem.get(key); ok {
			h.stats.memHits.Add(1)
			return e, nil
		}
	}
	if err, ok := h.failed.Get(failureKey(name, version)); ok {
		h.stats.remembered.Add(1)
		return nil, err
	}
	var led atomic.Bool
	e, err, _ := h.flights.Do(ctx, key, func(ctx context.Context) (*entry, error) {
		led.Store(true)
		return h.fill(ctx, key, etag, name, sp)
	})
	if !led.Load() && ctx.Err() == nil {
		h.stats.coalesced.Add(1)
	}
	return e, err
}

// fill finds a thumbnail on disk or renders it and stores it.
func (h *Handler) fill(ctx context.Context, key, etag, name string, sp Spec) (*entry, error) {
	if h.disk != nil {
		if e, ok := h.disk.get(key, etag); ok {
			h.stats.diskHits.Add(1)
			h.store(key, e)
			return e, nil
		}
	}
	e, err := h.render(ctx, name, sp)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			h.stats.cancelled.Add(1)
		}
		return nil, err
	}
	e.etag = etag
	h.store(key, e)
	if h.disk != nil {
		if err := h.disk.set(key, e); err != nil {
			logDiskError(ctx, err)
		}
	}
	return e, nil
}

func (h *Handler) store(key string, e *entry) {
	if h.mem != nil {
		h.mem.set(key, e)
	}
}

// render opens the source, reads its header to learn the render's cost,
// waits for a render slot, then reads the rest, decodes, resizes and
// encodes, within Options.RenderTimeout from the slot on. Failures caused
// by the source itself are remembered for its version.
func (h *Handler) render(ctx context.Context, name string, sp Spec) (*entry, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rc, info, err := h.opts.Source.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if info.Size > h.opts.MaxSourceBytes {
		err := fmt.Errorf("%w: %d bytes is more than the limit of %d", ErrSourceTooLarge, info.Size, h.opts.MaxSourceBytes)
		h.failed.Set(failureKey(name, info.Version), err)
		return nil, err
	}
	head, cost, err := probe(rc, info.Size, sp, h.opts.MaxSourcePixels)
	if err != nil {
		return nil, readError(ctx, name, err)
	}
	t, err := h.q.acquire(ctx, name, cost)
	if err != nil {
		if errors.Is(err, ErrOverloaded) {
			h.stats.rejected.Add(1)
		}
		return nil, err
	}
	defer t.release()
	// A render of the same source that held the slot before may just have
	// failed: then this one would too.
	fkey := failureKey(name, info.Version)
	if err, ok := h.failed.Get(fkey); ok {
		h.stats.remembered.Add(1)
		return nil, err
	}
	deadline := time.AfterFunc(h.opts.RenderTimeout, func() { cancel(ErrRenderTimeout) })
	defer deadline.Stop()
	h.renders.Add(1)
	e, err := h.renderSource(ctx, name, head, rc, info, sp)
	if err != nil {
		if context.Cause(ctx) == ErrRenderTimeout {
			err = fmt.Errorf("%w: cancelled after %v (%w)", ErrRenderTimeout, h.opts.RenderTimeout, err)
		}
		if remembered(err) {
			h.failed.Set(fkey, err)
		}
		return nil, err
	}
	return e, nil
}

// renderSource reads the rest of the source after head and renders it.
func (h *Handler) renderSource(ctx context.Context, name string, head []byte, rest io.Reader, info Info, sp Spec) (*entry, error) {
	buf, _ := bufPool.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	defer bufPool.Put(buf)
	if info.Size > 0 {
		buf.Grow(int(info.Size) + 1)
	}
	buf.Write(head)
	if _, err := buf.ReadFrom(io.LimitReader(rest, h.opts.MaxSourceBytes+1-int64(len(head)))); err != nil {
		return nil, readError(ctx, name, err)
	}
	if int64(buf.Len()) > h.opts.MaxSourceBytes {
		return nil, fmt.Errorf("%w: more than the limit of %d bytes", ErrSourceTooLarge, h.opts.MaxSourceBytes)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body, ct, err := renderData(ctx, buf.Bytes(), sp, h.opts.MaxSourcePixels, h.opts.MaxDimension, h.opts.WebP)
	if err != nil {
		return nil, err
	}
	return &entry{body: body, contentType: ct, modTime: info.ModTime}, nil
}

// bufPool holds *bytes.Buffer for source bytes.
var bufPool sync.Pool

// readError reports a failure to read a source: the context's error when
// the render was cancelled, else a read error (502).
func readError(ctx context.Context, name string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("reading %s: %w", name, err)
}

// renderData turns source bytes into thumbnail bytes, giving up between
// steps once ctx is done. Panics (a decoder bug on hostile input) are
// reported as ErrCorruptImage.
func renderData(ctx context.Context, data []byte, sp Spec, maxPixels int64, maxDim int, webp Encoder) (body []byte, ctype string, err error) {
	defer func() {
		if p := recover(); p != nil {
			body, ctype, err = nil, "", fmt.Errorf("%w: render failed: %v", ErrCorruptImage, p)
		}
	}()
	d, err := decodeContext(ctx, data, sp, maxPixels, maxDim)
	if err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	m := thumb(d.img, d.plan, d.orientation)
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	f := outputFormat(sp.Format, d.format, m)
	if f == WebP {
		if webp == nil {
			return nil, "", ErrWebPOutput
		}
		var buf bytes.Buffer
		if err := webp(&buf, m, sp.quality()); err != nil {
			return nil, "", fmt.Errorf("%w: webp: %w", errEncode, err)
		}
		return buf.Bytes(), "image/webp", nil
	}
	body, ctype, err = encode(m, f, sp.quality())
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %w", errEncode, f, err)
	}
	return body, ctype, nil
}

// renderBytes renders data with no deadline and no WebP encoder, for tests
// and benchmarks of the render path alone.
func renderBytes(data []byte, sp Spec, maxPixels int64, maxDim int) ([]byte, string, error) {
	return renderData(context.Background(), data, sp, maxPixels, maxDim, nil)
}
