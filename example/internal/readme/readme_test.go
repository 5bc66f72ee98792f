// Package readme checks that every Go block in the repository's README.md
// compiles, so the code users copy first is code that builds.
package readme

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// blocks returns the ```go blocks of md with the line each starts on.
func blocks(md string) (out []string, lines []int) {
	var cur []string
	in := false
	start := 0
	for i, l := range strings.Split(md, "\n") {
		switch {
		case !in && strings.TrimSpace(l) == "```go":
			in, cur, start = true, nil, i+2
		case in && strings.TrimSpace(l) == "```":
			in = false
			out = append(out, strings.Join(cur, "\n")+"\n")
			lines = append(lines, start)
		case in:
			cur = append(cur, l)
		}
	}
	return out, lines
}

var (
	hasMain    = regexp.MustCompile(`(?m)^func main\(\)`)
	hasPackage = regexp.MustCompile(`(?m)^package \w+`)
)

// TestREADMEBlocksCompile writes each block as its own package of a
// scratch module that starts from the example module's requirements (with
// the library replaced by this checkout), lets `go mod tidy` add what a
// block imports beyond them, and vets them all. A block is a Go file
// without its package clause (imports, then declarations; blocks with a
// func main are commands), or a whole file with one.
func TestREADMEBlocksCompile(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	exampleDir := filepath.Join(filepath.Dir(file), "..", "..")
	root := filepath.Join(exampleDir, "..")
	md, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bs, lines := blocks(string(md))
	if len(bs) == 0 {
		t.Fatal("README.md has no Go blocks")
	}
	dir := t.TempDir()
	gomod, err := os.ReadFile(filepath.Join(exampleDir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	absRoot, _ := filepath.Abs(root)
	mod := regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(string(gomod), "module readmecheck")
	mod = regexp.MustCompile(`(?m)^replace github.com/sharednothing/sharednothing => .*$`).ReplaceAllString(mod,
		"replace github.com/sharednothing/sharednothing => "+absRoot)
	write(t, filepath.Join(dir, "go.mod"), mod)
	sum, err := os.ReadFile(filepath.Join(exampleDir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "go.sum"), string(sum))
	where := map[string]int{}
	for i, b := range bs {
		name := fmt.Sprintf("block%02d", i+1)
		pkg := name
		if hasMain.MatchString(b) {
			pkg = "main"
		}
		if !hasPackage.MatchString(b) {
			b = "package " + pkg + "\n\n" + b
		}
		write(t, filepath.Join(dir, name, "block.go"), b)
		where[name] = lines[i]
	}
	var out bytes.Buffer
	run := func(args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd.Run()
	}
	err = run("mod", "tidy")
	if err == nil {
		err = run("vet", "./...")
	}
	if err != nil {
		msg := out.String()
		for name, line := range where {
			msg = strings.ReplaceAll(msg, name+"/block.go:", fmt.Sprintf("README.md block at line %d, line ", line))
		}
		t.Fatalf("README Go blocks do not compile: %v\n%s", err, msg)
	}
	t.Logf("%d README blocks compile and vet clean", len(bs))
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
