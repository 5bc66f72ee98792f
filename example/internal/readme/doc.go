// Package readme holds only a test: every Go block of the repository's
// README.md must compile as it stands.
package readme
