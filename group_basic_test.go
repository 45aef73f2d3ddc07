package qxd_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

func TestGroupBasic(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "g1", qxd.TopicConfig{Partitions: 6})
	p, _ := c.NewProducer()
	var recs []*qxd.Record
	for i := 0; i < 600; i++ {
		recs = append(recs, &qxd.Record{Topic: "g1", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)

	var mu sync.Mutex
	seen := map[string]int{}
	owners := map[int32]map[string]bool{}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		cons := qxdtest.NewConsumer(t, c, qxd.Group("grp"), qxd.SessionTimeout(2*time.Second))
		defer cons.Close(context.Background())
		if err := cons.Subscribe(ctx, "g1"); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				done := len(seen) == 600
				mu.Unlock()
				if done {
					return
				}
				pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				rs, err := cons.Poll(pctx)
				cancel()
				if err != nil && ctx.Err() != nil {
					return
				}
				mu.Lock()
				for _, r := range rs {
					seen[string(r.Value)]++
					if owners[r.Partition] == nil {
						owners[r.Partition] = map[string]bool{}
					}
					owners[r.Partition][fmt.Sprint(i)] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 600 {
		t.Fatalf("read %d distinct records, want 600", len(seen))
	}
	t.Logf("owners: %v", owners)
}
