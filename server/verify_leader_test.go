package server_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestVerifyAcrossMetaLeaderChanges verifies a three-replica partition while
// JetStream's meta group changes leaders again and again: for a moment after
// each step-down every node refuses the leader reads a verify makes (error
// 10008, "JetStream system temporarily unavailable"). The verify a node runs
// itself (a repair's of the copy it rebuilt; the test's verifyIntact) reads the
// page again once there is a leader, as the SDK does for a user's verify: both
// read every batch, and neither fails. JetStream refuses so only once its meta
// group has run for 10 s (nats-server's lostQuorumInterval), which the test
// waits for: about 15 s in all, most of it idle.
func TestVerifyAcrossMetaLeaderChanges(t *testing.T) {
	t.Parallel()
	began := time.Now()
	cfgs := manualRepairConfigs(t)
	for i := range cfgs {
		cfgs[i].AutoLeaderRebalance = false
		cfgs[i].Scrub = false
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	ctx := qxdtest.Context(t, 2*time.Minute)
	a := nodes[0].Admin()
	const topic = "stepped"
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: topic, Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}}); err != nil {
		t.Fatal(err)
	}
	const batches = 200
	produceMarked(ctx, t, nodes[0], topic, batches, "")
	waitInSync(ctx, t, a, topic, 3)
	d, err := a.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	leader := d.Partitions[0].Leader
	c := qxdtest.ConnectCluster(t, nodes)
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(began.Add(11 * time.Second))):
	}

	// The meta leader steps down every 100 ms until stop.
	stop := make(chan struct{})
	var stepping sync.WaitGroup
	stepping.Add(1)
	go func() {
		defer stepping.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, n := range nodes {
				if rn := n.RaftNode("_meta_"); rn != nil && rn.Leader() {
					_ = rn.StepDown()
				}
			}
		}
	}()
	stopStepping := sync.OnceFunc(func() { close(stop); stepping.Wait() })
	defer stopStepping()
	// Until JetStream refuses a leader read for want of a meta leader.
	get, _ := json.Marshal(map[string]uint64{"seq": 1})
	for refused := false; !refused; {
		if ctx.Err() != nil {
			t.Fatal("JetStream never refused a leader read while its meta leader stepped down")
		}
		m, err := nc.Request(semantics.Subject(semantics.JSStreamMsgGetPrefix, semantics.StreamName(topic, 0)), get, 2*time.Second)
		if err == nil {
			var out struct {
				Error *struct {
					ErrCode int `json:"err_code"`
				} `json:"error"`
			}
			refused = json.Unmarshal(m.Data, &out) == nil && out.Error != nil && out.Error.ErrCode == 10008
		}
	}
	// Both verifies begin while it refuses; the step-downs end half a second later.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		v, err := a.VerifyOnNode(ctx, topic, 0, leader)
		if err != nil || v.Batches != batches || len(v.Damage) > 0 {
			t.Errorf("verify of node %s's copy in the node while the meta leader stepped down: %d batches, damage %+v, %v; want %d intact", leader, v.Batches, v.Damage, err, batches)
		}
	}()
	go func() {
		defer wg.Done()
		v, err := c.Admin().VerifyPartition(ctx, topic, 0)
		if err != nil || v.Batches != batches || len(v.Damage) > 0 {
			t.Errorf("verify through the SDK while the meta leader stepped down: %d batches, damage %+v, %v; want %d intact", v.Batches, v.Damage, err, batches)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	stopStepping()
	wg.Wait()
	t.Logf("verified %v after the cluster started", time.Since(began).Round(time.Millisecond))
}
