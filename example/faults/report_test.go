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
func writeReliability(t *testing.T, path, table string, windows []*window, lb string) {
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
		lines := w.noteLines()
		if len(lines) == 0 {
			b.WriteString("- nothing to note\n")
		}
		for _, n := range lines {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	b.WriteString(lbIntro)
	b.WriteString(lb)
	b.WriteString("\n")
	b.WriteString(findings)
	b.WriteString("## Reproduce\n\n```sh\nmake faults   # about three minutes; rewrites this file\n```\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("writing %s: %v", path, err)
	}
}

// lbIntro explains the load-balancer table.
const lbIntro = `## What nginx costs

Before the fault windows, with no other load, the suite fetches a
logged-in /notes page over keep-alive connections for 2 s at a time: once
spread directly over the three instances (each connection to one instance,
as a client-side balancer would: the sum of what the instances serve), and
once through nginx, alternating, three rounds each; the table shows the
medians and each round's throughput. Everything shares the same 2 cores, so
nginx's own CPU comes out of the instances' share: on separate machines it
would cost less. The configuration is ` + "`stack.NginxConf`" + ` (upstream
keepalive, one worker, buffered access log), the one the README recommends.

`

// findings is what the suite exposed while it was being built, and what was
// done about it.
const findings = `## What the suite found, and what was fixed

- **A one-step key rotation logs users out.** Rolling "seal with the new
  secret, accept the old" one instance at a time hands new-key cookies to
  instances that do not know the new key yet: 1029 logged-out responses in
  the first run. A rolling rotation needs three rolls (accept the new key;
  seal with it; drop the old), which the example documents and this suite
  performs.
- **Pin cookies and thumbnail URLs need the old keys too.** With one key per
  replicapin router, a client pinned by an instance already on the new key
  was unpinned on one still on the old key: 5 stale reads. ` + "`replicapin.Options.PreviousKeys`" + ` and
  ` + "`thumbnail.Options.PreviousKeys`" + ` fixed it (one router and one thumbnail
  handler, one cache and one render queue, across a rotation).
- **A request in flight on a killed instance got nginx's raw 502.** nginx now
  turns its own 502/504 into a plain 503 with ` + "`Retry-After`" + ` that says the
  change may or may not have been saved. Such a write was never acknowledged,
  so no acknowledged write can be lost.
- **Thumbnail overload answered slowly.** With the default 64-deep queue a
  flood waited out the 10 s queue timeout before its 503s; the cluster runs
  with ` + "`-thumb-queue 4`" + ` so that work beyond the queue is refused at once.
- **The example's database pools kept only 2 idle connections** (database/sql's
  default), so under load most requests opened a new PostgreSQL connection: a
  baseline p50 of 60 ms and p99 of 570 ms. With ` + "`SetMaxIdleConns(20)`" + ` the same
  load runs at about 6 ms p50 and 50 ms p99, with six times the throughput.

Left as they are: a rolling restart (window 4) can still cost a POST or two
a clean 503, when nginx hands the request to an instance in the instant its
listener closes on SIGTERM; nginx does not retry a non-idempotent request it
has sent. Removing an instance from the upstream before stopping it (what a
deploy tool does) would make that zero. Requests that need the primary fail
with 503 while it is down (window 6): pinned reads and writes; unpinned
reads keep coming from the replica.

`
