//go:build faults

package faults

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// window collects what happened to requests during one fault's window.
type window struct {
	name string

	mu        sync.Mutex
	durations []time.Duration
	byStatus  map[int]int // 0 = transport error
	sent      int
	stale     int // a user's own acknowledged note missing right after its write
	loggedOut int // a logged-in user shown as logged out
	lost      int // acknowledged notes missing at the end of the window
	dup       int // acknowledged notes stored more than once
	retries   int // POSTs sent again after a 503 or a broken connection
	retriedOK int // notes saved after at least one retry
	replayed  int // retries answered from the idempotency record
	// lossAllowed is how many acknowledged writes the window may lose
	// (asynchronous failover: set to what was measured, reported).
	lossAllowed int
	unclean     int // 503s that hung or carried a stack trace
	postDur     []time.Duration
	notes       []string
	noteKinds   []string
	kinds       map[string]int
	rssPeak     map[string]int64 // instance -> peak VmRSS in bytes
}

func newWindow(name string) *window {
	return &window{name: name, byStatus: map[int]int{}, rssPeak: map[string]int64{}}
}

func (w *window) record(status int, d time.Duration) {
	w.mu.Lock()
	w.sent++
	w.byStatus[status]++
	w.durations = append(w.durations, d)
	w.mu.Unlock()
}

func (w *window) post(d time.Duration) {
	w.mu.Lock()
	w.postDur = append(w.postDur, d)
	w.mu.Unlock()
}

func (w *window) add(field *int, n int) {
	w.mu.Lock()
	*field += n
	w.mu.Unlock()
}

func (w *window) note(format string, args ...any) {
	w.noteKind("", format, args...)
}

// noteKind records a note; notes of one kind (default: the text without a
// leading user name) are kept once and counted.
func (w *window) noteKind(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if kind == "" {
		kind = msg
		if i := strings.Index(msg, " "); i > 0 && strings.HasPrefix(msg, "u") {
			kind = msg[i:]
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.kinds == nil {
		w.kinds = map[string]int{}
	}
	if w.kinds[kind] == 0 && len(w.notes) < 40 {
		w.notes = append(w.notes, msg)
		w.noteKinds = append(w.noteKinds, kind)
	}
	w.kinds[kind]++
}

// noteLines returns the notes, each with how often its kind happened.
func (w *window) noteLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, len(w.notes))
	for i, n := range w.notes {
		out[i] = n
		if c := w.kinds[w.noteKinds[i]]; c > 1 {
			out[i] = fmt.Sprintf("%s (%d times)", n, c)
		}
	}
	return out
}

func (w *window) rss(instance string, bytes int64) {
	w.mu.Lock()
	if bytes > w.rssPeak[instance] {
		w.rssPeak[instance] = bytes
	}
	w.mu.Unlock()
}

// succeeded counts responses a user would call a success: 2xx and 3xx.
func (w *window) succeeded() int {
	n := 0
	for s, c := range w.byStatus {
		if s >= 200 && s < 400 {
			n += c
		}
	}
	return n
}

// failed returns the failures by status ("502": 3, "err": 1).
func (w *window) failed() map[string]int {
	out := map[string]int{}
	for s, c := range w.byStatus {
		switch {
		case s == 0:
			out["err"] += c
		case s >= 400:
			out[strconv.Itoa(s)] += c
		}
	}
	return out
}

func (w *window) percentile(p float64) time.Duration { return percentile(w.durations, p) }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	d := append([]time.Duration(nil), ds...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(float64(len(d)-1) * p)
	return d[i]
}

func fmtFailed(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d×%s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

func fmtRSS(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]>>20))
	}
	return strings.Join(parts, " / ")
}

// tableHeader and row render the windows as a Markdown table.
const tableHeader = "| fault | sent | succeeded | failed (by status) | POSTs retried → saved (replays) | stale reads | logged out | lost acked writes | saved twice | p50 | p99 | POST p50 / p99 | peak RSS per instance (MiB) |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"

func (w *window) row() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("| %s | %d | %d | %s | %d → %d (%d) | %d | %d | %d | %d | %s | %s | %s / %s | %s |\n",
		w.name, w.sent, w.succeeded(), fmtFailed(w.failed()), w.retries, w.retriedOK, w.replayed, w.stale, w.loggedOut, w.lost, w.dup,
		r(w.percentile(0.50)), r(w.percentile(0.99)), r(percentile(w.postDur, 0.5)), r(percentile(w.postDur, 0.99)), fmtRSS(w.rssPeak))
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
