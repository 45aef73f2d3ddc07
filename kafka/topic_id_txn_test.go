package kafka_test

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// metadataTopicID reads a topic's id from a Metadata v13.
func metadataTopicID(t *testing.T, addr, topic string) [16]byte {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 13
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, mt)
	resp := roundTrip(t, addr, req).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata of %s: %+v", topic, resp.Topics)
	}
	return resp.Topics[0].TopicID
}

// produceByID is a Produce v13 of one batch to each partition of each topic id.
func produceByID(t *testing.T, addr string, parts map[[16]byte][]int32, b []byte) *kmsg.ProduceResponse {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 13, -1, 10000
	ids := slices.SortedFunc(func(yield func([16]byte) bool) {
		for id := range parts {
			if !yield(id) {
				return
			}
		}
	}, func(a, b [16]byte) int { return slices.Compare(a[:], b[:]) })
	for _, id := range ids {
		rt := kmsg.NewProduceRequestTopic()
		rt.TopicID = id
		for _, p := range parts[id] {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = p, b
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return roundTrip(t, addr, req).(*kmsg.ProduceResponse)
}

// TestProduceV13: Produce v13 names topics by id (KIP-516). A known id is stored
// and answered under that id; an id no topic has, the zero id, and the id of a
// topic deleted and made again are UNKNOWN_TOPIC_ID and store nothing. A
// franz-go client produces at v13 on its own.
func TestProduceV13(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "pv13", qxd.TopicConfig{Partitions: 2})
	addr := n.KafkaAddr()
	id := metadataTopicID(t, addr, "pv13")
	unknown := id
	unknown[0] ^= 0xff

	resp := produceByID(t, addr, map[[16]byte][]int32{id: {0, 1}, unknown: {0}, {}: {1}}, batch(t, 2, 8))
	got := map[[16]byte][]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			got[rt.TopicID] = append(got[rt.TopicID], rp.ErrorCode)
			if rp.ErrorCode == 0 && rp.BaseOffset != 0 {
				t.Errorf("pv13/%d stored at %d, want 0", rp.Partition, rp.BaseOffset)
			}
		}
	}
	want := map[[16]byte][]int16{id: {0, 0}, unknown: {kerr.UnknownTopicID.Code}, {}: {kerr.UnknownTopicID.Code}}
	if len(got) != len(want) || !slices.Equal(got[id], want[id]) || !slices.Equal(got[unknown], want[unknown]) || !slices.Equal(got[[16]byte{}], want[[16]byte{}]) {
		t.Fatalf("Produce v13 codes by topic id: %v, want %v (pv13 stored, the unknown and zero ids UNKNOWN_TOPIC_ID)", got, want)
	}
	if rs := pollSDK(t, c, "pv13", 2, 4); len(rs) != 4 {
		t.Fatalf("read %d records of pv13, want 4", len(rs))
	}

	// The topic made again has another id: the old one stores nothing in it.
	ctx := ctxFor(t, 30*time.Second)
	if err := c.Admin().DeleteTopic(ctx, "pv13"); err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "pv13", qxd.TopicConfig{Partitions: 2})
	resp = produceByID(t, addr, map[[16]byte][]int32{id: {0}}, batch(t, 1, 8))
	if code := resp.Topics[0].Partitions[0].ErrorCode; resp.Topics[0].TopicID != id || code != kerr.UnknownTopicID.Code {
		t.Fatalf("Produce v13 to the id of pv13 before it was made again: %v under %x, want UNKNOWN_TOPIC_ID", kerr.ErrorForCode(code), resp.Topics[0].TopicID)
	}
	if now := metadataTopicID(t, addr, "pv13"); now == id {
		t.Fatal("pv13 made again has the same id")
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version, lo.ReplicaID = 7, -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "pv13"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	if r := roundTrip(t, addr, lo).(*kmsg.ListOffsetsResponse); r.Topics[0].Partitions[0].Offset != 0 {
		t.Fatalf("pv13/0 made again ends at %d, want 0", r.Topics[0].Partitions[0].Offset)
	}

	var log versionLog
	p := kafkaClient(t, n, kgo.DefaultProduceTopic("pv13"), kgo.WithLogger(&log))
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("by id")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if v := log.max("Produce"); v != 13 {
		t.Errorf("franz-go produced at v%d, want v13", v)
	}
}

// txnOffsetCommitByID sends a TxnOffsetCommit of offset 1 of partition 0 of each
// topic id (v6) or name (below).
func txnOffsetCommitByID(t *testing.T, addr string, v int16, txn, group string, pid int64, epoch int16, generation int32, member string, ids [][16]byte, names []string) *kmsg.TxnOffsetCommitResponse {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = v
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txn, group, pid, epoch
	req.Generation, req.MemberID = generation, member
	add := func(rt kmsg.TxnOffsetCommitRequestTopic) {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	for _, id := range ids {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.TopicID = id
		add(rt)
	}
	for _, name := range names {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = name
		add(rt)
	}
	return roundTrip(t, addr, req).(*kmsg.TxnOffsetCommitResponse)
}

// TestTxnOffsetCommitV6: TxnOffsetCommit v6 names topics by id (KIP-1319): a
// known id's offset is stored when the transaction commits, an id no topic has
// is UNKNOWN_TOPIC_ID; a commit with a generation to a group that does not
// exist is GROUP_ID_NOT_FOUND (UNKNOWN_MEMBER_ID below v6, as before). A
// franz-go transaction commits its offsets at v6.
func TestTxnOffsetCommitV6(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "tocv6", qxd.TopicConfig{Partitions: 1})
	addr := n.KafkaAddr()
	id := metadataTopicID(t, addr, "tocv6")
	unknown := id
	unknown[0] ^= 0xff
	ctx := ctxFor(t, 60*time.Second)

	tx := kafkaClient(t, n, kgo.TransactionalID("tocv6-tx"), kgo.DefaultProduceTopic("tocv6"))
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("in txn")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := tx.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, v := range []int16{5, 6} {
		r := txnOffsetCommitByID(t, addr, v, "tocv6-tx", "tocv6-ghost", pid, epoch, 3, "ghost", [][16]byte{id}, []string{"tocv6"})
		want := kerr.UnknownMemberID.Code
		if v >= 6 {
			want = kerr.GroupIDNotFound.Code
		}
		if code := r.Topics[0].Partitions[0].ErrorCode; code != want {
			t.Errorf("TxnOffsetCommit v%d with generation 3 to a group that does not exist: %v, want %v", v, kerr.ErrorForCode(code), kerr.ErrorForCode(want))
		}
	}

	r := txnOffsetCommitByID(t, addr, 6, "tocv6-tx", "tocv6-g", pid, epoch, -1, "", [][16]byte{id, unknown}, nil)
	if len(r.Topics) != 2 || r.Topics[0].TopicID != id || r.Topics[0].Partitions[0].ErrorCode != 0 ||
		r.Topics[1].TopicID != unknown || r.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("TxnOffsetCommit v6 of tocv6 and an unknown id: %+v, want tocv6 taken and UNKNOWN_TOPIC_ID", r.Topics)
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version, of.Group = 7, "tocv6-g"
	ofr := roundTrip(t, addr, of).(*kmsg.OffsetFetchResponse)
	if len(ofr.Topics) != 1 || ofr.Topics[0].Topic != "tocv6" || ofr.Topics[0].Partitions[0].Offset != 1 {
		t.Fatalf("offsets of tocv6-g after the commit: %+v, want tocv6/0 at 1", ofr.Topics)
	}

	// An offset committed by id is not stored if its topic is made again
	// before the transaction commits: it belongs to the old topic.
	qxdtest.CreateTopic(t, c, "tocv6-src", qxd.TopicConfig{Partitions: 1})
	src := metadataTopicID(t, addr, "tocv6-src")
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("in txn 2")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if pid, epoch, err = tx.ProducerID(ctx); err != nil {
		t.Fatal(err)
	}
	r = txnOffsetCommitByID(t, addr, 6, "tocv6-tx", "tocv6-g2", pid, epoch, -1, "", [][16]byte{src}, nil)
	if code := r.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("TxnOffsetCommit v6 of tocv6-src: %v", kerr.ErrorForCode(code))
	}
	if err := c.Admin().DeleteTopic(ctx, "tocv6-src"); err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "tocv6-src", qxd.TopicConfig{Partitions: 1})
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	of = kmsg.NewPtrOffsetFetchRequest()
	of.Version, of.Group = 7, "tocv6-g2"
	ofr = roundTrip(t, addr, of).(*kmsg.OffsetFetchResponse)
	for _, rt := range ofr.Topics {
		for _, rp := range rt.Partitions {
			if rp.Offset >= 0 {
				t.Errorf("tocv6-g2 has %s/%d at %d after its topic was made again, want no offset", rt.Topic, rp.Partition, rp.Offset)
			}
		}
	}

	// franz-go's group-transact session sends its offsets at v6.
	var log versionLog
	in := kafkaClient(t, n, kgo.DefaultProduceTopic("tocv6"))
	for range 2 {
		if err := in.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(addr), kgo.TransactionalID("tocv6-gts"), kgo.WithLogger(&log),
		kgo.ConsumerGroup("tocv6-gts-g"), kgo.ConsumeTopics("tocv6"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic("tocv6"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	for {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the session read nothing")
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		if committed, err := sess.End(ctx, kgo.TryCommit); err != nil || !committed {
			t.Fatalf("end: committed %v, %v", committed, err)
		}
		break
	}
	if v := log.max("TxnOffsetCommit"); v != 6 {
		t.Errorf("franz-go committed its transaction's offsets at v%d, want v6", v)
	}
}
