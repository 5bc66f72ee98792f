// Package replicapin sends reads to database replicas while giving each client
// read-your-writes consistency: a client that just wrote carries the primary's
// position in a signed cookie and reads from the primary until a replica has
// replayed past it, whichever instance serves the next request.
package replicapin
