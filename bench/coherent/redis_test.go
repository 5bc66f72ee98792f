package coherent

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/sharednothing/sharednothing/localcache"
)

// redisServer runs a throwaway redis-server on a free loopback port and
// returns its address.
func redisServer(b *testing.B) string {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal("redis-server not installed (apt-get install -y redis-server)")
		}
		b.Skip("redis-server not installed (apt-get install -y redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// redis-server logs this line once it accepts connections.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				ready <- true
				io.Copy(io.Discard, out)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			b.Fatal("redis-server exited before accepting connections")
		}
	case <-time.After(10 * time.Second):
		b.Fatal("redis-server did not start within 10 s")
	}
	return addr
}

// BenchmarkLatencyRedis is BenchmarkLatency with the peer design, a Redis
// pub/sub "backplane" (as FusionCache and similar caches use): the same
// commit on PostgreSQL, then PUBLISH; three subscribers drop the key from
// their caches. It measures only the transport: it has no positions, so it
// cannot prevent stale refills from a lagging replica, and needs a second
// service.
func BenchmarkLatencyRedis(b *testing.B) {
	db := openPrimary(b)
	addr := redisServer(b)
	dropped := make(chan string, 3)
	for range 3 {
		lc, err := localcache.New(localcache.Options[string, string]{MaxEntries: 1 << 16, TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		c, err := redis.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		ps := redis.PubSubConn{Conn: c}
		if err := ps.Subscribe("inv"); err != nil {
			b.Fatal(err)
		}
		if _, ok := ps.Receive().(redis.Subscription); !ok {
			b.Fatal("subscription not confirmed")
		}
		b.Cleanup(func() { c.Close() })
		go func() {
			for {
				switch m := ps.Receive().(type) {
				case redis.Message:
					lc.Delete(string(m.Data))
					dropped <- string(m.Data)
				case error:
					return
				}
			}
		}()
	}
	pub, err := redis.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	ctx := context.Background()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		key := "lat" + strconv.Itoa(i)
		if _, err := db.ExecContext(ctx, `INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, key, i); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := pub.Do("PUBLISH", "inv", key); err != nil {
			b.Fatal(err)
		}
		for range 3 {
			select {
			case k := <-dropped:
				if k != key {
					b.Fatalf("got %s, want %s", k, key)
				}
			case <-time.After(5 * time.Second):
				b.Fatal("a subscriber did not drop the key within 5 s")
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
