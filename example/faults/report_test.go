//go:build faults

package faults

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// writeReliability writes the measured table, with each window's notes and
// how to reproduce it, to path (docs/RELIABILITY.md under make faults).
func writeReliability(t *testing.T, path, table string, windows []*window) {
	var b strings.Builder
	fmt.Fprintf(&b, `# Reliability: the scaled-out example under faults

Measured by `+"`make faults`"+` (the Go test package `+"`example/faults`"+`) on %s,
%d CPU cores, Go %s. The suite starts the cluster that `+"`make cluster`"+` runs
(a PostgreSQL primary and one streaming replica with a steady %v replay delay,
three app instances, nginx round-robin in front, all on loopback), drives %d
simulated users through nginx, each with its own cookie jar (%d post notes and
read them straight back, %d only browse; all log in, read the public page and
their notes, open the gallery and fetch thumbnails), and injects one fault per
window while the load runs.

Checked in every window, strictly: zero stale reads (a user's own acknowledged
note missing right after the write), zero logged-out users, zero lost
acknowledged writes (every note the app answered 303 for is on the primary
afterwards), and failures only as clean, quick 503s where the fault makes them
unavoidable. Latency is per request as the users saw it, through nginx.

`, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), strings.TrimPrefix(runtime.Version(), "go"),
		replicaLag, writers+readers, writers, readers)
	b.WriteString(table)
	b.WriteString("\n## What happened in each window\n\n")
	for _, w := range windows {
		fmt.Fprintf(&b, "**%s**\n", w.name)
		if len(w.notes) == 0 {
			b.WriteString("- nothing to note\n")
		}
		for _, n := range w.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Reproduce\n\n```sh\nmake faults   # about three minutes; rewrites this file\n```\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("writing %s: %v", path, err)
	}
}
