package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// idempotentBatch sends partition 0 of topic, on the node at natsAddr, a batch of
// one record from idempotent producer 7000 at sequence seq, and returns the
// writer's answer. It retries while no writer listens yet.
func idempotentBatch(t *testing.T, nc *nats.Conn, topic string, seq int32) error {
	t.Helper()
	var b semantics.BatchBuilder
	b.Append(&semantics.Record{Value: []byte("v"), Timestamp: time.Now()})
	batch, err := b.Build(nil, semantics.ProducerInfo{ID: 7000, BaseSequence: seq}, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	m, err := nc.Request(semantics.WriterSubject(topic, 0), batch, 5*time.Second)
	for errors.Is(err, nats.ErrNoResponders) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		m, err = nc.Request(semantics.WriterSubject(topic, 0), batch, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("batch at sequence %d to %s: %v", seq, topic, err)
	}
	r, err := semantics.ParseProduceReply(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return r.Err()
}

// TestServerProducerIDExpiration: --producer-id-expiration
// (QXD_PRODUCER_ID_EXPIRATION, the config file's producer_id_expiration) reaches
// the partition writers. With 2s, an idempotent producer idle for 2.5 s is
// forgotten: its next batch, at sequence 1, is refused UNKNOWN_PRODUCER_ID; with
// the default (24h) the same batch is stored. A value that is not a positive
// duration stops the server with one line naming the flag or key.
func TestServerProducerIDExpiration(t *testing.T) {
	// Not parallel: it sets an environment variable.
	conf := func(text string) string {
		path := filepath.Join(t.TempDir(), "qxd.conf")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	type node struct {
		name   string
		args   []string
		env    string // QXD_PRODUCER_ID_EXPIRATION, set for the last node only
		forget bool
		nc     *nats.Conn
	}
	nodes := []*node{
		{name: "default"},
		{name: "flag", args: []string{"--producer-id-expiration", "2s"}, forget: true},
		{name: "file", args: []string{"--config", conf("producer_id_expiration: \"2s\"\n")}, forget: true},
		{name: "flag over file", args: []string{"--config", conf("producer_id_expiration: \"2s\"\n"), "--producer-id-expiration", "1h"}},
		{name: "env", env: "2s", forget: true},
	}
	for _, n := range nodes {
		if n.env != "" {
			t.Setenv("QXD_PRODUCER_ID_EXPIRATION", n.env)
		}
		addr := freePort(t)
		startServer(t, append([]string{"--listen", addr, "--data", t.TempDir()}, n.args...)...)
		var out syncBuffer
		if err := run(t.Context(), []string{"qxd", "--server", "nats://" + addr, "topic", "create", "idle", "--partitions", "1"}, strings.NewReader(""), &out, &out); err != nil {
			t.Fatalf("%s: topic create: %v\n%s", n.name, err, out.String())
		}
		nc, err := nats.Connect("nats://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		n.nc = nc
		if err := idempotentBatch(t, nc, "idle", 0); err != nil {
			t.Fatalf("%s: first batch: %v", n.name, err)
		}
	}
	time.Sleep(2500 * time.Millisecond) // past the 2s expiration for every node
	for _, n := range nodes {
		err := idempotentBatch(t, n.nc, "idle", 1)
		switch {
		case n.forget && !errors.Is(err, semantics.ErrUnknownProducerID):
			t.Errorf("%s: batch at sequence 1 after 2.5 s idle: %v, want UNKNOWN_PRODUCER_ID", n.name, err)
		case !n.forget && err != nil:
			t.Errorf("%s: batch at sequence 1 after 2.5 s idle: %v, want it stored", n.name, err)
		}
	}

	for _, tc := range []struct {
		name, conf string
		args       []string
		want       string
	}{
		{name: "word", args: []string{"--producer-id-expiration", "daily"}, want: `--producer-id-expiration "daily" is not a positive duration`},
		{name: "zero", args: []string{"--producer-id-expiration", "0s"}, want: `--producer-id-expiration "0s" is not a positive duration`},
		{name: "negative", args: []string{"--producer-id-expiration", "-1h"}, want: `--producer-id-expiration "-1h" is not a positive duration`},
		{name: "file unquoted", conf: "producer_id_expiration: 30m\n", want: "producer_id_expiration: 30000000 is not a duration"},
		{name: "file zero", conf: "producer_id_expiration: \"0s\"\n", want: `producer_id_expiration: "0s" is not a positive duration`},
	} {
		t.Run("bad "+tc.name, func(t *testing.T) {
			args := []string{"qxd", "server", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--kafka-listen", ""}
			if tc.conf != "" {
				args = append(args, "--config", conf(tc.conf))
			}
			var out syncBuffer
			err := run(t.Context(), append(args, tc.args...), strings.NewReader(""), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%v: %v, want one line containing %q", tc.args, err, tc.want)
			}
		})
	}
}
