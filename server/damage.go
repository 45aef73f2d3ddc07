package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/semantics"
)

// This file keeps what reads and verifies found damaged in partitions' stored
// copies: a record per partition in the partitions bucket (semantics.DamageKey),
// replicated as the checkpoints are, so that describe and cluster info show it on
// whichever node answers them. A node's reads (Fetcher), its verifies and the
// SDK's reads (semantics.APITopicReportDamage) add to it; a verify that reads a
// stretch of a node's copy intact removes that node's entries for it (so a verify
// of the whole partition, in one request or many, removes them all).

// maxDamageEntries bounds a partition's damage record: past it, the newest
// findings are dropped (the first ones say the copy is damaged; a verify lists
// them all).
const maxDamageEntries = 64

// getDamage returns partition p's damage record (empty when none), as the
// partitions bucket's leader holds it: a replica's copy (a direct get) can be a
// write behind for a moment, and then a describe right after a verify showed no
// damage the verify had just recorded, and updateDamage's compare-and-set went
// round on a stale revision. When the leader does not answer within
// leaderReadWait (the bucket between leaders), a replica's copy is read.
func (m *metadata) getDamage(ctx context.Context, topicID string, p int32) (semantics.DamageRecord, uint64, error) {
	var rec semantics.DamageRecord
	key := semantics.DamageKey(topicID, p)
	v, rev, err := kvscan.GetFresh(ctx, m.nc, m.parts, key, leaderReadWait)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, nil
	}
	if err != nil {
		return rec, 0, err
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, 0, fmt.Errorf("damage record %s is corrupt: %w", key, err)
	}
	return rec, rev, nil
}

// updateDamage changes partition p's damage record with change, by
// compare-and-set, retried when another node changed it meanwhile, and sent
// again while the partitions bucket is between leaders (a node just restarted or
// died): damage a read found must be recorded, or nothing repairs it. change
// reports whether it changed anything; an empty record is deleted.
func (m *metadata) updateDamage(ctx context.Context, topicID string, p int32, change func(*semantics.DamageRecord) bool) (bool, error) {
	until := time.Now().Add(damageRetryFor)
	for {
		done, err := m.updateDamageOnce(ctx, topicID, p, change)
		if err == nil || ctx.Err() != nil || !kvscan.Transient(err) || time.Now().After(until) {
			return done, err
		}
		select {
		case <-ctx.Done():
			return done, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// damageRetryFor bounds how long updateDamage sends a change again: about an
// election of the bucket's stream.
const damageRetryFor = 10 * time.Second

// updateDamageOnce is one round of updateDamage's compare-and-set.
func (m *metadata) updateDamageOnce(ctx context.Context, topicID string, p int32, change func(*semantics.DamageRecord) bool) (bool, error) {
	key := semantics.DamageKey(topicID, p)
	for range 10 {
		rec, rev, err := m.getDamage(ctx, topicID, p)
		if err != nil {
			return false, err
		}
		if !change(&rec) {
			return false, nil
		}
		switch {
		case len(rec.Damage) == 0 && rev != 0:
			err = m.parts.Delete(ctx, key, jetstream.LastRevision(rev))
		case len(rec.Damage) == 0:
			return false, nil
		default:
			b, _ := json.Marshal(rec)
			if rev == 0 {
				_, err = m.parts.Create(ctx, key, b)
			} else {
				_, err = m.parts.Update(ctx, key, b, rev)
			}
		}
		if err == nil {
			return true, nil
		}
		var apiErr *jetstream.APIError
		if !errors.Is(err, jetstream.ErrKeyExists) && !(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return false, err
		}
	}
	return false, fmt.Errorf("update damage record %s: it kept changing", key)
}

// addDamage adds d to partition p's damage record unless an entry for the same
// node and stream sequences is there; it reports whether it added it.
func (m *metadata) addDamage(ctx context.Context, topicID string, p int32, d semantics.BatchDamage) (bool, error) {
	return m.updateDamage(ctx, topicID, p, func(rec *semantics.DamageRecord) bool {
		if len(rec.Damage) >= maxDamageEntries || slices.ContainsFunc(rec.Damage, func(x semantics.BatchDamage) bool {
			return x.Node == d.Node && x.Kind == d.Kind && x.FromSeq == d.FromSeq && x.ToSeq == d.ToSeq
		}) {
			return false
		}
		rec.Damage = append(rec.Damage, d)
		return true
	})
}

// clearDamage removes node's entries for stream sequences from to to (both
// included) from partition p's damage record: a verify read that stretch of
// node's copy intact. 0 and math.MaxUint64 clear all of node's entries.
func (m *metadata) clearDamage(ctx context.Context, topicID string, p int32, node string, from, to uint64) (bool, error) {
	return m.updateDamage(ctx, topicID, p, func(rec *semantics.DamageRecord) bool {
		n := len(rec.Damage)
		rec.Damage = slices.DeleteFunc(rec.Damage, func(x semantics.BatchDamage) bool {
			return x.Node == node && x.FromSeq >= from && x.ToSeq <= to
		})
		return len(rec.Damage) != n
	})
}

// clearScrubbed removes from partition p's damage record the entries of known
// (entries naming node) whose stream sequences all lie in one of the stretches
// intact (first and last sequence, both included): the scrub read that much of
// node's copy intact after it saw those entries. Entries not in known
// (recorded since the read began) stay. It returns the entries it removed.
func (m *metadata) clearScrubbed(ctx context.Context, topicID string, p int32, node string, known []semantics.BatchDamage, intact [][2]uint64) ([]semantics.BatchDamage, error) {
	var cleared []semantics.BatchDamage
	_, err := m.updateDamage(ctx, topicID, p, func(rec *semantics.DamageRecord) bool {
		cleared = cleared[:0]
		rec.Damage = slices.DeleteFunc(rec.Damage, func(x semantics.BatchDamage) bool {
			if x.Node != node || !slices.Contains(known, x) || !slices.ContainsFunc(intact, func(s [2]uint64) bool {
				return x.FromSeq >= s[0] && x.ToSeq <= s[1]
			}) {
				return false
			}
			cleared = append(cleared, x)
			return true
		})
		return len(cleared) > 0
	})
	if err != nil {
		return nil, err
	}
	return cleared, nil
}

// allDamage returns every partition's damage record, by topic id and partition.
func (m *metadata) allDamage(ctx context.Context) (map[string]map[int32][]semantics.BatchDamage, error) {
	all := map[string]map[int32][]semantics.BatchDamage{}
	err := kvscan.Scan(ctx, m.parts, semantics.DamageKeys, func() { clear(all) }, func(e jetstream.KeyValueEntry) error {
		var rec semantics.DamageRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil || len(rec.Damage) == 0 {
			return nil // shown by describe, which reads the record itself
		}
		id, rest, _ := strings.Cut(e.Key(), ".")
		var p int32
		if _, err := fmt.Sscanf(rest, "%d.damage", &p); err != nil {
			return nil
		}
		if all[id] == nil {
			all[id] = map[int32][]semantics.BatchDamage{}
		}
		all[id][p] = rec.Damage
		return nil
	})
	return all, err
}

// damageStore keeps partitions' damage records (the partitions bucket).
type damageStore interface {
	addDamage(ctx context.Context, topicID string, p int32, d semantics.BatchDamage) (bool, error)
}

var _ damageStore = (*metadata)(nil)

// damageFound records d, found in partition p of topic t by a read or a verify,
// and logs it at error level the first time. recovered tells whether the reader
// read the batch from another replica's intact copy.
func damageFound(ctx context.Context, log *slog.Logger, m damageStore, t semantics.TopicMeta, p int32, d semantics.BatchDamage, recovered bool) error {
	added, err := m.addDamage(ctx, t.ID, p, d)
	if err != nil {
		return fmt.Errorf("record damage to partition %s on node %s: %w", semantics.PartitionString(t.Name, p), d.Node, err)
	}
	if added {
		log.Error("stored partition data is damaged", "topic", t.Name, "partition", p, "offset", d.FromOffset, "node", d.Node,
			"err", fmt.Sprintf("%s (read from another replica: %t)", d.Detail, recovered))
	}
	return nil
}

// copyCheckTries is how many consumers checkCopies creates per node it reads:
// JetStream places each on one of the stream's replicas at random.
const copyCheckTries = 6

// checkCopies reads the batch at stream sequence seq of partition p of t from
// the copies held by nodes, each through an ephemeral consumer that JetStream
// placed on that node (a direct get does not say which replica answered it; a
// consumer runs on one replica and reads that replica's store), and records,
// naming the node, what it finds damaged: a batch that fails its checks, or seq
// missing. from and to are the offsets the batch holds (-1: not known). It
// returns the nodes whose copies it read.
func checkCopies(ctx context.Context, log *slog.Logger, js jetstream.JetStream, m damageStore, t semantics.TopicMeta, p int32, seq uint64, from, to int64, nodes []string) []string {
	stream := semantics.StreamName(t.Name, p)
	var checked []string
	for try := 0; try < copyCheckTries*len(nodes) && len(checked) < len(nodes) && ctx.Err() == nil; try++ {
		name := "qxd_check_" + rand.Text()
		c, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Name:          name,
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq,
			AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute,
			Replicas: 1, MemoryStorage: true,
		})
		if err != nil {
			log.Debug("copy check consumer not created", "topic", t.Name, "partition", p, "err", err)
			return checked
		}
		host := ""
		if info := c.CachedInfo(); info != nil && info.Cluster != nil {
			host = info.Cluster.Leader
		}
		if slices.Contains(nodes, host) && !slices.Contains(checked, host) {
			if d, ok := readCopy(ctx, c, seq, from, to, host); ok {
				checked = append(checked, host)
				if d != nil {
					if err := damageFound(ctx, log, m, t, p, *d, true); err != nil {
						log.Warn("damage not recorded", "topic", t.Name, "partition", p, "node", host, "err", err)
					}
				}
			}
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = js.DeleteConsumer(dctx, stream, name)
		cancel()
	}
	return checked
}

// readCopy reads the message at seq (holding offsets from to to) through
// consumer c, which runs on node and starts there: the damage it finds (nil when
// none), and whether it read one.
func readCopy(ctx context.Context, c jetstream.Consumer, seq uint64, from, to int64, node string) (*semantics.BatchDamage, bool) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	batch, err := c.Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		return nil, false
	}
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			return nil, false
		}
		at := md.Sequence.Stream
		switch {
		case at > seq:
			return &semantics.BatchDamage{Kind: semantics.DamageUnreadable, FromSeq: seq, ToSeq: seq, FromOffset: from, ToOffset: to, Node: node,
				Detail: fmt.Sprintf("stream sequence %d is missing from the copy on node %s", seq, node)}, true
		case at < seq:
			return nil, false
		}
		if _, err := semantics.ParseBatchHeader(msg.Data()); err != nil {
			return &semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: seq, ToSeq: seq, FromOffset: from, ToOffset: to, Node: node,
				Detail: fmt.Sprintf("the batch at stream sequence %d on node %s fails its checks: %v", seq, node, err)}, true
		}
		return nil, true
	}
	return nil, false
}

// ReportDamage records damage a reader found in a partition's copy on a node
// (semantics.APITopicReportDamage): describe and cluster info show it until a
// verify reads that node's copy intact.
func (a *Admin) ReportDamage(ctx context.Context, req semantics.ReportDamageRequest) error {
	if err := semantics.ValidateTopicName(req.Name); err != nil {
		return err
	}
	t, err := a.meta.getTopic(ctx, req.Name)
	if err != nil {
		return err
	}
	d := req.Damage
	switch {
	case req.Partition < 0 || req.Partition >= t.Config.Partitions:
		return semantics.Errorf(semantics.ErrUnknownTopic,
			"partition %d of topic %q does not exist: the topic has partitions 0 to %d", req.Partition, req.Name, t.Config.Partitions-1)
	case d.Kind != semantics.DamageCorrupt && d.Kind != semantics.DamageUnreadable:
		return semantics.Errorf(semantics.ErrInvalidRequest, "damage report for %s: kind %q: want %q or %q",
			semantics.PartitionString(req.Name, req.Partition), d.Kind, semantics.DamageCorrupt, semantics.DamageUnreadable)
	case d.Node == "" || d.FromSeq == 0 || d.ToSeq < d.FromSeq:
		return semantics.Errorf(semantics.ErrInvalidRequest, "damage report for %s: it must name the node and stream sequences (from %d to %d)",
			semantics.PartitionString(req.Name, req.Partition), d.FromSeq, d.ToSeq)
	}
	if len(d.Detail) > 512 {
		d.Detail = d.Detail[:512]
	}
	return damageFound(ctx, a.log, a.meta, t, req.Partition, d, req.Recovered)
}

// damageRecordNote says what a partition's damage record holds, in a sentence
// naming the offsets and the nodes; "" when nothing. Entries of one node for
// consecutive stream sequences are told as one stretch.
func damageRecordNote(damage []semantics.BatchDamage) string {
	if len(damage) == 0 {
		return ""
	}
	byNode := map[string][]semantics.BatchDamage{}
	var nodes []string
	for _, d := range damage {
		if _, ok := byNode[d.Node]; !ok {
			nodes = append(nodes, d.Node)
		}
		byNode[d.Node] = append(byNode[d.Node], d)
	}
	var parts []string
	for _, n := range nodes {
		ds := byNode[n]
		slices.SortFunc(ds, func(x, y semantics.BatchDamage) int { return cmp.Compare(x.FromSeq, y.FromSeq) })
		var stretches []string
		for i := 0; i < len(ds); {
			j := i
			for j+1 < len(ds) && ds[j+1].FromSeq <= ds[j].ToSeq+1 {
				j++
			}
			to := ds[i].ToOffset
			for _, d := range ds[i+1 : j+1] {
				to = max(to, d.ToOffset)
			}
			stretches = append(stretches, offsetsText(ds[i].FromOffset, to))
			i = j + 1
		}
		parts = append(parts, fmt.Sprintf("%s damaged on node %s", strings.Join(stretches, ", "), n))
	}
	return fmt.Sprintf("reads found %s: batches there fail their CRC-32C or cannot be read; readers get them from a healthy replica where one holds them; nodes started with --auto-repair (the default) rebuild a replicated partition's damaged copy on their own, else rebuild it with 'qxd topic repair' (or restore the partition); 'qxd topic describe --verify-replicas' reads every copy back",
		strings.Join(parts, "; "))
}

// offsetsText names the offsets from to to (-1: not known).
func offsetsText(from, to int64) string {
	switch {
	case from >= 0 && to >= from:
		return fmt.Sprintf("offsets %d to %d", from, to)
	case from >= 0:
		return fmt.Sprintf("the offsets from %d", from)
	case to >= 0:
		return fmt.Sprintf("the offsets up to %d", to)
	}
	return "offsets not known"
}
