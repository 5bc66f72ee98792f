package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	long, other := strings.Repeat("a", 32), strings.Repeat("b", 32)
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			if c.addr != "127.0.0.1:8080" || c.databaseURL != "" || c.replicaDelay.String() != "1s" {
				t.Errorf("got addr %q, database %q, delay %v; want 127.0.0.1:8080, empty, 1s", c.addr, c.databaseURL, c.replicaDelay)
			}
		}},
		{name: "env defaults", env: map[string]string{"SECRET": long, "ACCEPT_SECRETS": other + ", " + long, "REPLICA_URLS": "postgres://r1,postgres://r2",
			"DATABASE_URL": "postgres://p", "DATA_DIR": "/d", "INSTANCE": "i-1"}, check: func(t *testing.T, c config) {
			if c.secret != long || !slices.Equal(c.acceptSecrets, []string{other, long}) || !slices.Equal(c.replicaURLs, []string{"postgres://r1", "postgres://r2"}) || c.instance != "i-1" {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "flags replace env lists", env: map[string]string{"ACCEPT_SECRETS": other, "DATABASE_URL": "postgres://p", "DATA_DIR": "/d"},
			args: []string{"-accept-secret", long, "-replica-url", "postgres://r3"}, check: func(t *testing.T, c config) {
				if !slices.Equal(c.acceptSecrets, []string{long}) || !slices.Equal(c.replicaURLs, []string{"postgres://r3"}) {
					t.Errorf("got accept %q, replicas %q", c.acceptSecrets, c.replicaURLs)
				}
			}},
		{name: "short secret", args: []string{"-secret", "short"}, wantErr: "at least 32 bytes"},
		{name: "short accepted secret", args: []string{"-accept-secret", "short"}, wantErr: "at least 32 bytes"},
		{name: "postgres needs data dir", args: []string{"-database-url", "postgres://p"}, wantErr: "-data-dir is required"},
		{name: "sqlite needs no data dir", args: []string{"-database-url", "sqlite:"}},
		{name: "replica needs primary", args: []string{"-replica-url", "postgres://r"}, wantErr: "needs -database-url"},
		{name: "bad delay", args: []string{"-replica-delay", "soon"}, wantErr: "-replica-delay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"ADDR", "DATABASE_URL", "REPLICA_URLS", "SECRET", "ACCEPT_SECRETS", "DATA_DIR", "INSTANCE", "REPLICA_DELAY", "SECURE_COOKIES"} {
				t.Setenv(k, tc.env[k])
			}
			c, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}
