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
%d CPU cores (shared with other work while this was measured: latencies are
noisy), Go %s. The suite starts the cluster that `+"`make cluster`"+` runs, with
two replicas: a PostgreSQL primary and two streaming replicas with a steady
%v replay delay, three app instances that reach the primary through a
multi-host connection string (`+"`target_session_attrs=read-write`"+`) and list
every node as a replica (`+"`target_session_attrs=standby`"+`), and nginx in
front (`+"`stack.NginxConf`"+`: upstream keepalive, passive health checks), all on
loopback. It drives %d simulated users through nginx, each with its own
cookie jar (%d post notes and read them straight back, %d only browse; all
log in, read the public page and their notes, open the gallery and fetch
thumbnails), and injects one fault per window while the load runs. A user
whose note gets a 503 or a broken connection sends the same form again (same
idempotency key) up to 5 times, 300 ms apart, as a person would.

Checked in every window, strictly: zero stale reads (a user's own acknowledged
note missing right after the write), zero logged-out users, zero lost
acknowledged writes (every note the app answered 303 for is on the primary
afterwards; for asynchronous failover, the loss is counted and reported),
zero notes saved twice, and failures only as clean, quick 503s where the
fault makes them unavoidable; the rolling restart, and the replica faults,
with zero failed requests. Latency is per request as the users saw it,
through nginx.

The home page is cached by every instance for 5 minutes and each user's
photo and note counts for 10, and the instances keep those caches coherent
over PostgreSQL LISTEN/NOTIFY (package `+"`coherent`"+`). Windows 11 and 12 break
that bus under load (every LISTEN connection terminated, three times; the
primary restarted) and, right after each break, upload a photo through one
instance and poll every instance directly: its cached home page (to a
visitor without cookies) and the uploader's cached count (its session
without the pin cookie) must show the upload within %v of the upload's
answer, the bound a bus that lost notifications keeps by flushing its
caches when it reconnects (the example caps the reconnection backoff at
1 s; the rest is margin for polling on a loaded machine). The listener kills must
fail no request; the primary restart only with clean 503s.

`, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), strings.TrimPrefix(runtime.Version(), "go"),
		replicaLag, writers+readers, writers, readers, staleBound)
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
	b.WriteString("## Reproduce\n\n```sh\n" +
		"make faults                          # about 4 minutes; rewrites this file\n" +
		"FAULTS_ONLY='^(7|8)\\.' make faults   # only the matching windows (and the baseline)\n```\n")
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

- **A rolling restart failed POSTs** (2–4 clean 503s per roll): an instance
  stopped while nginx still routed to it, and nginx does not resend a POST it
  has sent. Instances now drain on SIGTERM (fail /healthz, close each
  connection after its response, then stop accepting), nginx keeps upstream
  connections only 1 s (less than the 2 s drain, so it holds none to a
  stopping instance), and a POST that never reached an instance (refused
  connection) is retried by nginx: window 7 has zero failed requests.
- **"May or may not have been saved"** is gone: forms carry an idempotency
  key recorded in the same transaction as the write. Window 8 kills an
  instance while POSTs wait inside it; the users' second attempts save each
  note once (column "saved twice" stays 0; a replay means the first attempt
  had committed).
- **No failover before**: the primary was one fixed address. Windows 9 and 10
  kill the primary, promote the most advanced replica and re-point the other;
  the instances follow without a restart, replicapin stops reading from the
  promoted node and uses the re-pointed one and the rebuilt old primary once
  they are on the new timeline. Requests needing the primary fail with 503
  from the kill until the instances' pools find the new primary (the notes
  give the timings; on this loaded machine most of it is the test choosing
  and promoting the replica, which a failover manager does in well under a
  second on an idle one).
- **Load balancer cost**: with one upstream connection per request, nginx
  served a logged-in page at a third of the instances' direct rate, p99
  210–714 ms at 32 connections. Upstream keepalive fixes most of it; the
  table above has today's figures.

Left as they are: requests in flight on a crashed instance (window 1, 8)
fail with a 503 (nginx retries GETs; users retry forms, safely now); with
asynchronous replication a failover may lose the commits the primary
acknowledged but had not yet sent (none in this run: on loopback the
replicas receive WAL within a millisecond; across a network the window is a
round trip or more); synchronous replication closes it at the cost the
window 10 notes measure.
`
