// Package e2e holds the example's end-to-end tests: the scaled-out cluster
// (PostgreSQL primary and lagging replica, three app instances, nginx) driven
// over HTTP with cookie jars, and the same cluster driven through a real
// headless Chromium. It has no non-test code.
//
// Set E2E_ARTIFACTS to a directory to keep the browser test's screenshots
// there; by default they go to a directory under os.TempDir().
package e2e
