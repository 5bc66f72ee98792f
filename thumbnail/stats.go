package thumbnail

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of a handler's counters since [New]. It encodes
// cleanly with encoding/json, so it publishes as it is:
//
//	expvar.Publish("thumbnails", expvar.Func(func() any { return thumbs.Stats() }))
type Stats struct {
	// Renders counts renders that got a slot and started decoding.
	Renders int64 `json:"renders"`
	// MemoryHits and DiskHits count thumbnails served from the caches.
	MemoryHits int64 `json:"memory_hits"`
	DiskHits   int64 `json:"disk_hits"`
	// NotModified counts 304 answers.
	NotModified int64 `json:"not_modified"`
	// Coalesced counts requests that got the result of a render another
	// request started.
	Coalesced int64 `json:"coalesced"`
	// QueueRejections counts renders refused for want of room in the queue
	// or of a slot within QueueTimeout (503).
	QueueRejections int64 `json:"queue_rejections"`
	// RememberedFailures counts requests answered from the memory of a
	// source version that failed to render, without reading it again.
	RememberedFailures int64 `json:"remembered_failures"`
	// CancelledRenders counts renders stopped because every request
	// waiting for them had gone.
	CancelledRenders int64 `json:"cancelled_renders"`
	// Failures counts failed requests by status code ("404", "503", ...).
	Failures map[string]int64 `json:"failures"`
	// Running and Waiting are the renders running and waiting for a slot
	// now.
	Running int `json:"running"`
	Waiting int `json:"waiting"`
}

// counters are the handler's live counters behind [Handler.Stats].
type counters struct {
	memHits, diskHits, notModified atomic.Int64
	coalesced, rejected            atomic.Int64
	remembered, cancelled          atomic.Int64

	mu       sync.Mutex
	failures map[int]int64
}

func (c *counters) failed(status int) {
	c.mu.Lock()
	if c.failures == nil {
		c.failures = make(map[int]int64)
	}
	c.failures[status]++
	c.mu.Unlock()
}

// Stats returns the handler's counters. It is safe to call at any time.
func (h *Handler) Stats() Stats {
	s := Stats{
		Renders:            h.renders.Load(),
		MemoryHits:         h.stats.memHits.Load(),
		DiskHits:           h.stats.diskHits.Load(),
		NotModified:        h.stats.notModified.Load(),
		Coalesced:          h.stats.coalesced.Load(),
		QueueRejections:    h.stats.rejected.Load(),
		RememberedFailures: h.stats.remembered.Load(),
		CancelledRenders:   h.stats.cancelled.Load(),
		Failures:           map[string]int64{},
	}
	h.stats.mu.Lock()
	for status, n := range h.stats.failures {
		s.Failures[strconv.Itoa(status)] = n
	}
	h.stats.mu.Unlock()
	s.Running, s.Waiting = h.q.stats()
	return s
}

// logDiskError logs a failure to write the disk cache: the request is
// served all the same.
func logDiskError(ctx context.Context, err error) {
	slog.ErrorContext(ctx, "thumbnail: disk cache", "err", err)
}
