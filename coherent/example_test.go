package coherent_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"time"

	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/internal/pgwire"
	"github.com/sharednothing/sharednothing/localcache"
)

// Two instances of an application, each with its own Bus, listener
// connection and cache of user names. A write on one invalidates the key
// on both; the other loads the new value on its next read. (The example
// runs against the package's test cluster with the test driver; an
// application uses pgx and the adapter in the package documentation.)
func Example() {
	ctx := context.Background()
	primary, err := sql.Open(pgwire.DriverName, cluster.Primary.DSN)
	if err != nil {
		log.Fatal(err)
	}
	defer primary.Close()
	if _, err := primary.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS example_users (id text PRIMARY KEY, name text)`); err != nil {
		log.Fatal(err)
	}
	if _, err := primary.ExecContext(ctx, `INSERT INTO example_users VALUES ('7', 'Ada') ON CONFLICT (id) DO UPDATE SET name = 'Ada'`); err != nil {
		log.Fatal(err)
	}

	dial := func(ctx context.Context) (coherent.Listener, error) {
		conn, err := pgwire.Connect(ctx, cluster.Primary.DSN)
		if err != nil {
			return nil, err
		}
		return wireListener{conn}, nil
	}
	loadName := func(ctx context.Context, id string) (string, error) {
		var name string
		err := primary.QueryRowContext(ctx, `SELECT name FROM example_users WHERE id = $1`, id).Scan(&name)
		return name, err
	}
	type instance struct {
		bus   *coherent.Bus
		names *coherent.Cache[string]
	}
	start := func() instance {
		bus, err := coherent.New(coherent.Options{Dial: dial, DB: primary, Channel: "example"})
		if err != nil {
			log.Fatal(err)
		}
		local, err := localcache.New(localcache.Options[string, string]{MaxEntries: 1000, TTL: 10 * time.Minute})
		if err != nil {
			log.Fatal(err)
		}
		names, err := coherent.NewCache(bus, "names", local)
		if err != nil {
			log.Fatal(err)
		}
		for !bus.Stats().Connected {
			time.Sleep(time.Millisecond) // a real instance does not wait
		}
		return instance{bus, names}
	}
	a, b := start(), start()
	defer a.bus.Close()
	defer b.bus.Close()

	name, _ := b.names.GetOrLoad(ctx, "7", loadName)
	fmt.Println("b reads:", name)

	// Instance a handles a rename: write, then tell every instance.
	if _, err := primary.ExecContext(ctx, `UPDATE example_users SET name = 'Ada Lovelace' WHERE id = '7'`); err != nil {
		log.Fatal(err)
	}
	if err := a.bus.Send(ctx, a.names.Key("7")); err != nil {
		log.Print(err) // the write stands; other instances catch up by TTL
	}

	for b.bus.Stats().Invalidations == 0 {
		time.Sleep(time.Millisecond) // only so that the output is deterministic
	}
	name, _ = b.names.GetOrLoad(ctx, "7", loadName)
	fmt.Println("b reads:", name)
	// Output:
	// b reads: Ada
	// b reads: Ada Lovelace
}
