// Package faults is the load and fault suite for the example app: it starts
// the scaled-out cluster (PostgreSQL primary + streaming replica, three app
// instances, nginx), drives a mixed load of simulated users through nginx,
// injects one fault after another and checks that users notice nothing worse
// than a slower page. Run it with `make faults`; it writes its table to
// docs/RELIABILITY.md.
package faults
