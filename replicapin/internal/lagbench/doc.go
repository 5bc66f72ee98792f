// Package lagbench holds the replica-lag × pinning-policy benchmark of
// replicapin against a real PostgreSQL primary and streaming replica. It has
// no code of its own; run it with
//
//	go test -run '^$' -bench LagPolicy -benchtime 64x ./replicapin/internal/lagbench/
//
// Without -bench the test binary starts no cluster and does nothing.
package lagbench
