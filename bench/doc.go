// Package bench holds side-by-side benchmarks of sharednothing against its
// peers. It is its own module so the library's go.mod never depends on them.
package bench
