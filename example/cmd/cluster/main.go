// Command cluster runs the example scaled out on loopback: a PostgreSQL
// primary and streaming replica, three app instances sharing nothing but the
// database, the upload directory and the secret, and nginx round-robin in
// front. It prints the URL and runs until Ctrl-C, then stops everything.
//
//	go run ./cmd/cluster (from example/; or make cluster) [-instances 3] [-replicas 1] [-replica-delay 1s]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sharednothing/sharednothing/example/internal/stack"
)

func main() {
	n := flag.Int("instances", 3, "number of app instances")
	replicas := flag.Int("replicas", 1, "number of streaming replicas")
	delay := flag.Duration("replica-delay", time.Second, "artificial replication lag of the replica")
	secret := flag.String("secret", os.Getenv("SECRET"), "secret shared by the instances (env SECRET; default random)")
	verbose := flag.Bool("v", false, "copy the instances' logs to stderr")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := stack.Options{Instances: *n, Replicas: *replicas, ReplicaDelay: *delay, Secret: *secret}
	if *verbose {
		opts.Log = os.Stderr
	}
	log.Printf("building the app and starting PostgreSQL, %d instances and nginx...", *n)
	start := time.Now()
	s, err := stack.Start(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	log.Printf("ready in %v", time.Since(start).Round(10*time.Millisecond))
	fmt.Printf("\n  open %s/   (nginx, round-robin over", s.URL)
	for _, in := range s.Instances {
		fmt.Printf(" %s=%s", in.Name, in.Addr)
	}
	fmt.Printf(")\n  primary %s\n", s.PG.PrimaryDSN())
	for _, r := range s.PG.Replicas() {
		fmt.Printf("  replica %s (lag %v)\n", r.DSN, *delay)
	}
	fmt.Printf("  logs    %s\n\n  Ctrl-C stops everything.\n\n", s.Dir)
	<-ctx.Done()
	log.Printf("stopping")
}
