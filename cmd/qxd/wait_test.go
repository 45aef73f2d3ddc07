package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// startPlainNATS starts a nats-server without qxd's services, with or without
// JetStream, and returns its client URL.
func startPlainNATS(t *testing.T, jetStream bool) string {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: jetStream, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

// TestNoQxdNode checks that a command pointed at a NATS server without qxd fails in
// seconds, saying what answered and what to check, and says what it waits for
// once the wait passes 2 s.
func TestNoQxdNode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		jetStream bool
		want      []string
	}{
		{"without JetStream", false, []string{"no qxd node answered at nats://", "has no JetStream", "check that --server (QXD_SERVER) names a qxd node", "majority of its nodes"}},
		{"with JetStream", true, []string{"no qxd node answered at nats://", "holds no qxd metadata", "check that --server (QXD_SERVER) names a qxd node", "majority of its nodes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := startPlainNATS(t, tc.jetStream)
			for _, args := range [][]string{{"topic", "create", "t"}, {"topic", "consume", "t"}} {
				var stdout, stderr syncBuffer
				ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
				start := time.Now()
				err := run(ctx, append([]string{"qxd", "--server", url}, args...), strings.NewReader(""), &stdout, &stderr)
				took := time.Since(start)
				cancel()
				if err == nil {
					t.Fatalf("qxd %s against a plain nats-server: no error; stdout %q", strings.Join(args, " "), stdout.String())
				}
				t.Logf("qxd %s: %s: %v\nstderr: %s", strings.Join(args, " "), took.Round(time.Millisecond), err, stderr.String())
				if took > 15*time.Second {
					t.Errorf("qxd %s took %s to fail, want a few seconds", strings.Join(args, " "), took.Round(time.Millisecond))
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("qxd %s: error %q lacks %q", strings.Join(args, " "), err, w)
					}
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("qxd %s: error is more than one line: %q", strings.Join(args, " "), err)
				}
				waiting := "qxd: waiting for a qxd node at " + url
				if got := stderr.String(); took > 3*time.Second && !strings.Contains(got, waiting) {
					t.Errorf("qxd %s waited %s; stderr %q lacks %q", strings.Join(args, " "), took.Round(time.Millisecond), got, waiting)
				}
			}
		})
	}
}

// TestClusterWithoutQuorum checks that a command sent to the one node left of a
// three-node cluster fails in seconds, saying that a majority must be up.
func TestClusterWithoutQuorum(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	c := newCLI(t, nodes[0])
	c.must("", "topic", "create", "t", "--replicas", "3")
	for _, n := range nodes[1:] {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		if err := n.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	// A leader that lost its followers steps down only after RAFT's quorum
	// timeout; a cluster without quorum is one where that has happened.
	js := qxdtest.JetStream(t, nodes[0])
	waitFor(t, "qxd's topics bucket to lose its leader", func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "KV_"+semantics.TopicsBucket)
		if err != nil {
			return false, err.Error()
		}
		ci := s.CachedInfo().Cluster
		return ci != nil && ci.Leader == "", fmt.Sprintf("%+v", ci)
	})
	for _, args := range [][]string{{"topic", "list"}, {"topic", "add-partitions", "t", "--num", "2"}} {
		var stdout, stderr syncBuffer
		start := time.Now()
		err := run(t.Context(), append([]string{"qxd", "--server", nodes[0].ClientURL()}, args...), strings.NewReader(""), &stdout, &stderr)
		took := time.Since(start)
		t.Logf("qxd %s: %s: %v\nstderr: %s", strings.Join(args, " "), took.Round(time.Millisecond), err, stderr.String())
		if err == nil {
			t.Errorf("qxd %s on one node of three: no error; stdout %q", strings.Join(args, " "), stdout.String())
			continue
		}
		if took > 15*time.Second {
			t.Errorf("qxd %s took %s to fail, want a few seconds", strings.Join(args, " "), took.Round(time.Millisecond))
		}
		for _, w := range []string{"(bucket qxd_topics) has no leader", "a majority of its nodes are up"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("qxd %s: error %q lacks %q", strings.Join(args, " "), err, w)
			}
		}
	}
}

// TestConnectTimeout checks --connect-timeout: the wait for a qxd node ends when it
// says, and a wait shorter than 2 s prints no waiting line.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	url := startPlainNATS(t, false)
	var stdout, stderr syncBuffer
	start := time.Now()
	err := run(t.Context(), []string{"qxd", "--server", url, "--connect-timeout", "1s", "topic", "list"}, strings.NewReader(""), &stdout, &stderr)
	took := time.Since(start)
	// The time it names is the ping's own wait, after connecting took its share of
	// the second.
	if err == nil || !regexp.MustCompile(`no qxd node answered at \S+ within [0-9.]+m?s`).MatchString(err.Error()) {
		t.Errorf("err = %v, want one saying no qxd node answered within the time it waited", err)
	}
	if took > 10*time.Second {
		t.Errorf("took %s with --connect-timeout 1s", took)
	}
	if strings.Contains(stderr.String(), "waiting for") {
		t.Errorf("a wait of 1s printed %q", stderr.String())
	}
	if err := run(t.Context(), []string{"qxd", "--server", url, "--connect-timeout", "0s", "topic", "list"}, strings.NewReader(""), &stdout, &stderr); err == nil ||
		!strings.Contains(err.Error(), "--connect-timeout") {
		t.Errorf("--connect-timeout 0s: err = %v, want one naming the flag", err)
	}
}

// TestConsumerWarnsWhenNodeLost checks that a consumer whose node goes away says
// so within seconds, rather than waiting silently for the whole outage.
func TestConsumerWarnsWhenNodeLost(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := newCLI(t, n)
	c.must("", "topic", "create", "t")
	c.must("a\n", "topic", "produce", "t")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"qxd", "--server", n.ClientURL(), "topic", "consume", "t"}, strings.NewReader(""), &stdout, &stderr)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("consume did not stop after its context ended")
		}
	}()
	waitFor(t, "the consumer's first record", func() (bool, string) { return stdout.String() == "a\n", stdout.String() })
	closeCtx, closeCancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer closeCancel()
	if err := n.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	waitFor(t, "a warning that the connection is lost", func() (bool, string) {
		return strings.Contains(stderr.String(), "lost the connection to the qxd node"), stderr.String()
	})
	t.Logf("warned %s after the node closed", time.Since(lost).Round(time.Millisecond))
}
