package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

func TestClusterInfoGolden(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "orders", "-p", "3")
	c.must("", "topic", "create", "audit", "-p", "2")
	golden(t, "cluster_info", mask(c.must("", "cluster", "info"), c.node.Name()))

	js := c.must("", "cluster", "info", "--json")
	golden(t, "cluster_info_json", mask(js, c.node.Name()))
	var info qxd.ClusterInfo
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		t.Fatalf("cluster info --json is not a JSON object: %v\n%s", err, js)
	}
	want := qxd.NodeInfo{Name: c.node.Name(), Up: true, Leaders: 5, Replicas: 5, Sync: "always"}
	if info.MetaLeader != c.node.Name() || len(info.Nodes) != 1 || info.Nodes[0] != want ||
		info.Partitions != 5 || len(info.UnderReplicated) != 0 {
		t.Errorf("cluster info --json of one node with 5 partitions: %+v", info)
	}
}

// cluster info shows where each node's Kafka listener takes clients: the address it
// advertises, in the table and in --json.
func TestClusterInfoKafkaAddress(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	c := newCLI(t, qxdtest.StartNodeWith(t, cfg))
	addr := c.node.KafkaAddr()
	out := c.must("", "cluster", "info")
	if !strings.Contains(out, "KAFKA") || !strings.Contains(out, addr) {
		t.Errorf("cluster info does not show the Kafka address %s:\n%s", addr, out)
	}
	var info qxd.ClusterInfo
	if err := json.Unmarshal([]byte(c.must("", "cluster", "info", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Nodes) != 1 || info.Nodes[0].Kafka != addr {
		t.Errorf("cluster info --json nodes %+v, want Kafka %s", info.Nodes, addr)
	}
}

// A partition whose stream was deleted behind qxd's back has no leader: it is
// listed as under-replicated, 0 of 1 replicas current.
func TestClusterInfoMissingStream(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "orders", "-p", "3")
	js := connectJetStream(t, c.node.ClientURL(), nil)
	if err := js.DeleteStream(t.Context(), semantics.StreamName("orders", 1)); err != nil {
		t.Fatal(err)
	}
	golden(t, "cluster_info_under_replicated", mask(c.must("", "cluster", "info"), c.node.Name()))
}

func TestClusterInfoErrors(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	_, err := c.run("", "cluster", "info", "extra")
	if err == nil || !strings.Contains(err.Error(), "no arguments") || strings.Contains(err.Error(), "\n") {
		t.Errorf("cluster info with an argument: err = %v, want one line saying it takes none", err)
	}
	_, err = c.run("", "cluster", "frob")
	if err == nil || !strings.Contains(err.Error(), `"frob"`) {
		t.Errorf("cluster frob: err = %v, want one naming the command", err)
	}
	if out := c.must("", "cluster"); !strings.Contains(out, "info") {
		t.Errorf("qxd cluster printed no help listing info:\n%s", out)
	}
}
