package kafka_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// advertised is what ApiVersions lists, by key, on a listener without SASL
// (which adds SaslHandshake v0-1 and SaslAuthenticate v0-2): docs/kafka.md's
// table. A change here is a change of what the listener promises to honour in
// full.
var advertised = map[int16][2]int16{
	0: {0, 13}, 1: {4, 18}, 2: {1, 11}, 3: {0, 13}, 8: {2, 10}, 9: {1, 10}, 10: {0, 6}, 11: {0, 9},
	12: {0, 4}, 13: {0, 5}, 14: {0, 5}, 15: {0, 6}, 16: {0, 5}, 18: {0, 5}, 19: {0, 7},
	20: {0, 6}, 21: {0, 2}, 22: {0, 5}, 23: {0, 4}, 24: {0, 3}, 25: {0, 4}, 26: {0, 5}, 28: {0, 6},
	32: {0, 4}, 33: {0, 2}, 37: {0, 3}, 42: {0, 3}, 44: {0, 1}, 47: {0, 0}, 60: {0, 2},
	61: {0, 0}, 65: {0, 0}, 66: {0, 2},
}

// ApiVersions lists exactly the advertised table.
func TestAdvertisedVersions(t *testing.T) {
	t.Parallel()
	n, _ := startNode(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	resp := roundTrip(t, n.KafkaAddr(), req).(*kmsg.ApiVersionsResponse)
	got := map[int16][2]int16{}
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	for _, k := range slices.Sorted(maps.Keys(advertised)) {
		if got[k] != advertised[k] {
			t.Errorf("ApiVersions lists %s (%d) as %v, want %v", kmsg.NameForKey(k), k, got[k], advertised[k])
		}
	}
	for k := range got {
		if _, ok := advertised[k]; !ok {
			t.Errorf("ApiVersions lists %s (%d), not in the table", kmsg.NameForKey(k), k)
		}
	}
}

// versionLog records the version of every request a franz-go client had
// answered (its debug log's "read <API> v<N>" lines without an error).
type versionLog struct {
	mu   sync.Mutex
	seen map[string]int16
}

func (l *versionLog) Level() kgo.LogLevel { return kgo.LogLevelDebug }

func (l *versionLog) Log(_ kgo.LogLevel, msg string, kv ...any) {
	name, v, ok := strings.Cut(strings.TrimPrefix(msg, "read "), " v")
	if !strings.HasPrefix(msg, "read ") || !ok {
		return
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "err" && kv[i+1] != nil {
			return
		}
	}
	var n int16
	if _, err := fmt.Sscan(v, &n); err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int16{}
	}
	l.seen[name] = max(l.seen[name], n)
}

func (l *versionLog) max(name string) int16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.seen[name]; ok {
		return v
	}
	return -1
}

// ourMax is franz-go's newest versions capped at what the listener advertises.
func ourMax() *kversion.Versions {
	vs := kversion.Stable()
	for k, mm := range advertised {
		if v, ok := vs.LookupMaxKeyVersion(k); ok && v > mm[1] {
			vs.SetMaxKeyVersion(k, mm[1])
		}
	}
	return vs
}

// A franz-go client pinned to the newest versions the listener advertises uses
// each of them for a whole exchange: produce (v13, by topic id), a transaction
// with its offsets (FindCoordinator v6, InitProducerId v5, AddOffsetsToTxn v4,
// TxnOffsetCommit v6, EndTxn v5), metadata (v13), offsets (ListOffsets v11), a
// read-committed fetch (v18) that returns what was committed, and the offsets
// the transaction committed (OffsetFetch v9).
func TestNewestVersionsEndToEnd(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "newest", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 60*time.Second)
	var log versionLog
	opts := []kgo.Opt{kgo.MaxVersions(ourMax()), kgo.WithLogger(&log), kgo.DefaultProduceTopic("newest")}

	p := kafkaClient(t, n, opts...)
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("plain")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tx := kafkaClient(t, n, append(opts, kgo.TransactionalID("newest-tx"))...)
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("in txn")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	id, epoch, err := tx.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "newest-tx", id, epoch, "newest-g"
	aor, err := ao.RequestWith(ctx, tx)
	if err != nil || aor.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v (code %d)", err, aor.ErrorCode)
	}
	oc := kmsg.NewPtrTxnOffsetCommitRequest()
	oc.TransactionalID, oc.Group, oc.ProducerID, oc.ProducerEpoch = "newest-tx", "newest-g", id, epoch
	ot := kmsg.NewTxnOffsetCommitRequestTopic()
	ot.Topic, ot.TopicID = "newest", metadataTopicID(t, n.KafkaAddr(), "newest") // v6 names it by id
	op := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	op.Partition, op.Offset = 0, 1
	ot.Partitions = append(ot.Partitions, op)
	oc.Topics = append(oc.Topics, ot)
	ocr, err := oc.RequestWith(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	if code := ocr.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	cons := kafkaClient(t, n, append(opts, kgo.ConsumeTopics("newest"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	var got []string
	for len(got) < 2 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil || ctx.Err() != nil {
			t.Fatalf("consume after %q: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, []string{"plain", "in txn"}) {
		t.Fatalf("read %q, want plain and in txn", got)
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = "newest-g"
	ofr, err := of.RequestWith(ctx, cons)
	if err != nil {
		t.Fatal(err)
	}
	if len(ofr.Topics) != 1 || ofr.Topics[0].Partitions[0].Offset != 1 {
		t.Fatalf("offsets committed in the transaction: %+v, want newest/0 at 1", ofr.Topics)
	}

	for name, want := range map[string]int16{
		"Produce": 13, "Fetch": 18, "ListOffsets": 11, "Metadata": 13, "FindCoordinator": 6,
		"InitProducerID": 5, "AddOffsetsToTxn": 4, "TxnOffsetCommit": 6, "EndTxn": 5, "OffsetFetch": 10,
	} {
		if got := log.max(name); got != want {
			t.Errorf("%s was answered at v%d at most, want v%d", name, got, want)
		}
	}
}

// Metadata v13 answers with its top-level error code 0.
func TestMetadataV13(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "md", qxd.TopicConfig{Partitions: 2})
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 13
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("md")
	md.Topics = append(md.Topics, mt)
	mr := roundTrip(t, n.KafkaAddr(), md).(*kmsg.MetadataResponse)
	if mr.ErrorCode != 0 || len(mr.Brokers) != 1 || len(mr.Topics) != 1 || len(mr.Topics[0].Partitions) != 2 {
		t.Fatalf("Metadata v13: code %d, brokers %d, topics %+v", mr.ErrorCode, len(mr.Brokers), mr.Topics)
	}
}

// DescribeCluster lists the brokers, none fenced (v2), and refuses a controller
// endpoint type with Kafka's UNSUPPORTED_ENDPOINT_TYPE (115), from v1 on.
func TestDescribeClusterNewest(t *testing.T) {
	t.Parallel()
	n, _ := startNode(t)
	for _, v := range []int16{1, 2} {
		dc := kmsg.NewPtrDescribeClusterRequest()
		dc.Version, dc.EndpointType, dc.IncludeFencedBrokers = v, 1, true
		r := roundTrip(t, n.KafkaAddr(), dc).(*kmsg.DescribeClusterResponse)
		if r.ErrorCode != 0 || len(r.Brokers) != 1 || r.Brokers[0].IsFenced {
			t.Fatalf("DescribeCluster v%d: code %d, brokers %+v", v, r.ErrorCode, r.Brokers)
		}
		dc.EndpointType = 2 // controllers
		r = roundTrip(t, n.KafkaAddr(), dc).(*kmsg.DescribeClusterResponse)
		if r.ErrorCode != kerr.UnsupportedEndpointType.Code {
			t.Fatalf("DescribeCluster v%d for controllers: code %d, want UNSUPPORTED_ENDPOINT_TYPE (%d)", v, r.ErrorCode, kerr.UnsupportedEndpointType.Code)
		}
	}
}

// Fetch v16 (KIP-951): a fetch with a leader epoch older than the partition's
// is answered FENCED_LEADER_EPOCH with the current leader, its epoch and its
// address, so the client need not read the metadata first.
func TestFetchLeaderHints(t *testing.T) {
	nodes := sharedKafkaCluster(t)
	c := qxdtest.Connect(t, nodes[0])
	hints := clusterTopic(t, c, "hints", qxd.TopicConfig{Partitions: 1, Replicas: 3})
	ctx := ctxFor(t, 90*time.Second)
	_, e1 := partitionEpoch(t, ctx, nodes, hints, -1)
	leader, e2 := moveLeader(t, ctx, nodes, hints, e1)

	vs := kversion.Stable()
	vs.SetMaxKeyVersion(kmsg.Fetch.Int16(), 16)
	cl := kafkaClient(t, nodes[1], kgo.MaxVersions(vs))
	ids, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var topicID [16]byte
	for _, mt := range ids.Topics {
		if mt.Topic != nil && *mt.Topic == hints {
			topicID = mt.TopicID
		}
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes = 0, 1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = hints, topicID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.CurrentLeaderEpoch, fp.FetchOffset, fp.PartitionMaxBytes = 0, e1, 0, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	kresp, err := cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.Version != 16 {
		t.Fatalf("Fetch sent as v%d, want v16", resp.Version)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.FencedLeaderEpoch.Code {
		t.Fatalf("fetch at epoch %d (current %d): code %d, want FENCED_LEADER_EPOCH", e1, e2, p.ErrorCode)
	}
	if p.CurrentLeader.LeaderID != leader || p.CurrentLeader.LeaderEpoch != e2 {
		t.Errorf("FENCED_LEADER_EPOCH names leader %d epoch %d, want %d epoch %d", p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch, leader, e2)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != leader || resp.Brokers[0].Port == 0 {
		t.Errorf("FENCED_LEADER_EPOCH gives brokers %+v, want the leader %d with its address", resp.Brokers, leader)
	}
}

// DescribeGroups v6 answers a missing group GROUP_ID_NOT_FOUND with a message
// (before v6: Dead, no error); ListGroups v5 names every group "classic" and
// filters by type; DeleteGroups v3 says why a group was not deleted;
// ListTransactions v2 filters by a pattern the whole transactional id matches
// and refuses one that does not compile.
func TestGroupAndTxnListingNewest(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "gl", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 60*time.Second)
	cl := kafkaClient(t, n, kgo.MaxVersions(ourMax()), kgo.DefaultProduceTopic("gl"))
	adm := kadm.NewClient(cl)
	if err := adm.CommitAllOffsets(ctx, "gl-group", kadm.Offsets{"gl": {0: {At: 0}}}); err != nil {
		t.Fatal(err)
	}

	for _, v := range []int16{5, 6} {
		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Version, dg.Groups = v, []string{"no-such-group", "gl-group"}
		r := roundTrip(t, n.KafkaAddr(), dg).(*kmsg.DescribeGroupsResponse)
		missing, there := r.Groups[0], r.Groups[1]
		wantCode := int16(0)
		if v >= 6 {
			wantCode = kerr.GroupIDNotFound.Code
		}
		if missing.ErrorCode != wantCode || missing.State != "Dead" || (v >= 6) != (missing.ErrorMessage != nil) {
			t.Errorf("DescribeGroups v%d of a missing group: code %d state %q message %v, want code %d, Dead", v, missing.ErrorCode, missing.State, missing.ErrorMessage, wantCode)
		}
		if there.ErrorCode != 0 || there.ErrorMessage != nil || there.State != "Empty" {
			t.Errorf("DescribeGroups v%d of a group with offsets: %+v", v, there)
		}
	}

	lg := kmsg.NewPtrListGroupsRequest()
	lg.Version, lg.TypesFilter = 5, []string{"Classic"}
	r := roundTrip(t, n.KafkaAddr(), lg).(*kmsg.ListGroupsResponse)
	if len(r.Groups) != 1 || r.Groups[0].Group != "gl-group" || r.Groups[0].GroupType != "classic" {
		t.Errorf("ListGroups v5 of classic groups: %+v", r.Groups)
	}
	lg.TypesFilter = []string{"consumer", "share"}
	if r := roundTrip(t, n.KafkaAddr(), lg).(*kmsg.ListGroupsResponse); r.ErrorCode != 0 || len(r.Groups) != 0 {
		t.Errorf("ListGroups v5 of consumer and share groups: code %d, %+v, want none", r.ErrorCode, r.Groups)
	}

	mem := kafkaClient(t, n, kgo.ConsumerGroup("gl-busy"), kgo.ConsumeTopics("gl"))
	for {
		d, err := adm.DescribeGroups(ctx, "gl-busy")
		if err == nil && len(d["gl-busy"].Members) == 1 {
			break
		}
		mem.PollRecords(ctxFor(t, 200*time.Millisecond), 1)
		if ctx.Err() != nil {
			t.Fatal("the member never joined gl-busy")
		}
	}
	dl := kmsg.NewPtrDeleteGroupsRequest()
	dl.Version, dl.Groups = 3, []string{"gl-busy", "gl-group"}
	dr := roundTrip(t, n.KafkaAddr(), dl).(*kmsg.DeleteGroupsResponse)
	busy, done := dr.Groups[0], dr.Groups[1]
	if busy.ErrorCode != kerr.NonEmptyGroup.Code || busy.ErrorMessage == nil || *busy.ErrorMessage == "" {
		t.Errorf("DeleteGroups v3 of a group with a member: code %d message %v, want NON_EMPTY_GROUP with a message", busy.ErrorCode, busy.ErrorMessage)
	}
	if done.ErrorCode != 0 || done.ErrorMessage != nil {
		t.Errorf("DeleteGroups v3 of an empty group: code %d message %v", done.ErrorCode, done.ErrorMessage)
	}

	for _, id := range []string{"tx-a1", "tx-b1"} {
		tx := kafkaClient(t, n, kgo.TransactionalID(id), kgo.DefaultProduceTopic("gl"))
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte(id)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		pattern string
		code    int16
		want    []string
	}{
		{"", 0, []string{"tx-a1", "tx-b1"}},
		{"tx-a.*", 0, []string{"tx-a1"}},
		{"tx-a", 0, nil}, // the whole id must match
		{"tx-(a|b)1", 0, []string{"tx-a1", "tx-b1"}},
		{"tx-(", kerr.InvalidRegularExpression.Code, nil},
	} {
		lt := kmsg.NewPtrListTransactionsRequest()
		lt.Version, lt.TransactionalIDPattern = 2, kmsg.StringPtr(c.pattern)
		r := roundTrip(t, n.KafkaAddr(), lt).(*kmsg.ListTransactionsResponse)
		var got []string
		for _, s := range r.TransactionStates {
			got = append(got, s.TransactionalID)
		}
		slices.Sort(got)
		if r.ErrorCode != c.code || !slices.Equal(got, c.want) {
			t.Errorf("ListTransactions v2 pattern %q: code %d, %q; want code %d, %q", c.pattern, r.ErrorCode, got, c.code, c.want)
		}
	}
}

// offsetCommit sends an OffsetCommit of version v for partition 0 of topic at
// offset and returns the partition's code.
func offsetCommit(t *testing.T, addr string, v int16, group, member string, generation int32, topic string, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.MemberID, req.Generation = v, group, member, generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := roundTrip(t, addr, req).(*kmsg.OffsetCommitResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("OffsetCommit v%d answered %+v, want one partition", v, resp.Topics)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// OffsetCommit v9 answers a commit with a generation to a group that does not
// exist GROUP_ID_NOT_FOUND, as Kafka answers a classic group (v8:
// UNKNOWN_MEMBER_ID, unchanged); a group with committed offsets exists, so an
// unknown member of it is UNKNOWN_MEMBER_ID at v9 too; a member of a live group
// commits at v9 with its generation and is fenced with another; and a franz-go
// group member pinned to OffsetCommit v9 commits at v9.
func TestOffsetCommitV9(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "oc9", qxd.TopicConfig{Partitions: 1})
	addr := n.KafkaAddr()
	for _, tc := range []struct {
		name       string
		v          int16
		group      string
		member     string
		generation int32
		want       int16
	}{
		{"v9 member of a missing group", 9, "oc9-missing", "m-1", 1, kerr.GroupIDNotFound.Code},
		{"v9 generation 0 of a missing group", 9, "oc9-missing", "", 0, kerr.GroupIDNotFound.Code},
		{"v8 member of a missing group", 8, "oc9-missing", "m-1", 1, kerr.UnknownMemberID.Code},
		{"v9 without a generation makes the group", 9, "oc9-simple", "", -1, 0},
		{"v9 member of a group with offsets only", 9, "oc9-simple", "m-1", 1, kerr.UnknownMemberID.Code},
	} {
		if got := offsetCommit(t, addr, tc.v, tc.group, tc.member, tc.generation, "oc9", 0); got != tc.want {
			t.Errorf("%s: code %v, want %v", tc.name, kerr.ErrorForCode(got), kerr.ErrorForCode(tc.want))
		}
	}

	ctx := ctxFor(t, 60*time.Second)
	var log versionLog
	p := kafkaClient(t, n, kgo.DefaultProduceTopic("oc9"))
	for i := range 3 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	vs := ourMax()
	vs.SetMaxKeyVersion(kmsg.OffsetCommit.Int16(), 9)
	m := kafkaClient(t, n, kgo.MaxVersions(vs), kgo.WithLogger(&log), kgo.ConsumerGroup("oc9-live"),
		kgo.ConsumeTopics("oc9"), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for got := 0; got < 3; {
		fs := m.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("member read %d of 3 records", got)
		}
		got += fs.NumRecords()
	}
	if err := m.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	if v := log.max("OffsetCommit"); v != 9 {
		t.Errorf("franz-go committed at v%d, want v9", v)
	}
	member, gen := m.GroupMetadata()
	if code := offsetCommit(t, addr, 9, "oc9-live", member, gen, "oc9", 2); code != 0 {
		t.Errorf("v9 commit as the member, generation %d: %v", gen, kerr.ErrorForCode(code))
	}
	if code := offsetCommit(t, addr, 9, "oc9-live", member, gen+1, "oc9", 1); code != kerr.IllegalGeneration.Code {
		t.Errorf("v9 commit with generation %d (the group's is %d): %v, want ILLEGAL_GENERATION", gen+1, gen, kerr.ErrorForCode(code))
	}
	offs, err := kadm.NewClient(p).FetchOffsets(ctx, "oc9-live")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("oc9", 0); !ok || o.At != 2 {
		t.Errorf("oc9-live's offset of oc9/0: %+v, want 2 (the fenced commit changes nothing)", o)
	}
}

// FindCoordinator v6 finds groups and transactions as v5 does and answers share
// groups (key type 2) INVALID_REQUEST, as a Kafka broker without a share
// coordinator does.
func TestFindCoordinatorV6(t *testing.T) {
	t.Parallel()
	n, _ := startNode(t)
	md := kmsg.NewPtrMetadataRequest()
	self := roundTrip(t, n.KafkaAddr(), md).(*kmsg.MetadataResponse).Brokers[0]
	for _, tc := range []struct {
		keyType int8
		key     string
		want    int16
	}{
		{0, "fc6-group", 0},
		{1, "fc6-txn", 0},
		{2, "fc6-share:AAAAAAAAAAAAAAAAAAAAAA:0", kerr.InvalidRequest.Code},
	} {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorType, req.CoordinatorKeys = 6, tc.keyType, []string{tc.key}
		var co kmsg.FindCoordinatorResponseCoordinator
		// The node's coordinators start once it runs (COORDINATOR_NOT_AVAILABLE
		// until then, which clients retry).
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r := roundTrip(t, n.KafkaAddr(), req).(*kmsg.FindCoordinatorResponse)
			if len(r.Coordinators) != 1 {
				t.Fatalf("FindCoordinator v6 key type %d: %+v", tc.keyType, r.Coordinators)
			}
			co = r.Coordinators[0]
			if co.ErrorCode != kerr.CoordinatorNotAvailable.Code || time.Now().After(end) {
				break
			}
		}
		if co.Key != tc.key || co.ErrorCode != tc.want {
			t.Errorf("FindCoordinator v6 key type %d: key %q code %v, want %q and %v", tc.keyType, co.Key, kerr.ErrorForCode(co.ErrorCode), tc.key, kerr.ErrorForCode(tc.want))
		}
		if tc.want == 0 && (co.NodeID != self.NodeID || co.Host != self.Host || co.Port != self.Port) {
			t.Errorf("FindCoordinator v6 key type %d names %d at %s:%d, want the node, %d at %s:%d", tc.keyType, co.NodeID, co.Host, co.Port, self.NodeID, self.Host, self.Port)
		}
		if tc.want != 0 && co.NodeID != -1 {
			t.Errorf("FindCoordinator v6 key type %d refused but names node %d", tc.keyType, co.NodeID)
		}
	}
}

// apiVersionsV5 asks addr for ApiVersions v5 naming cluster and node (nil and
// -1: neither) and returns the answer's code and its ApiVersions range.
func apiVersionsV5(t *testing.T, addr string, cluster *string, node int32) (int16, [2]int16) {
	t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version, req.ClientSoftwareName, req.ClientSoftwareVersion = 5, "test", "1"
	req.ClusterID, req.NodeID = cluster, node
	resp := roundTrip(t, addr, req).(*kmsg.ApiVersionsResponse)
	for _, k := range resp.ApiKeys {
		if k.ApiKey == kmsg.ApiVersions.Int16() {
			return resp.ErrorCode, [2]int16{k.MinVersion, k.MaxVersion}
		}
	}
	return resp.ErrorCode, [2]int16{-1, -1}
}

// apiVersionsLog records the versions of the ApiVersions requests a franz-go
// client sent to brokers it knows by id (not to a seed), when it names them.
type apiVersionsLog struct {
	mu       sync.Mutex
	toBroker []any
}

func (l *apiVersionsLog) Level() kgo.LogLevel { return kgo.LogLevelDebug }

func (l *apiVersionsLog) Log(_ kgo.LogLevel, msg string, kv ...any) {
	if msg != "issuing api versions request" {
		return
	}
	var broker string
	var version any
	for i := 0; i+1 < len(kv); i += 2 {
		switch kv[i] {
		case "broker":
			broker = fmt.Sprint(kv[i+1])
		case "version":
			version = kv[i+1]
		}
	}
	if !strings.HasPrefix(broker, "seed_") {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.toBroker = append(l.toBroker, version)
	}
}

// ApiVersions v5 (KIP-1242): a client naming this node's cluster and broker
// id, as Metadata gives them, or neither, gets the list; naming another cluster
// or broker is REBOOTSTRAP_REQUIRED; naming only one of them INVALID_REQUEST.
// A franz-go client, which names them on every connection to a broker it found
// in the metadata, produces and consumes.
func TestApiVersionsV5(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "av5", qxd.TopicConfig{Partitions: 1})
	addr := n.KafkaAddr()
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Version = 13
	md := roundTrip(t, addr, mreq).(*kmsg.MetadataResponse)
	cluster, self := *md.ClusterID, md.Brokers[0].NodeID
	other := "not-" + cluster
	for _, tc := range []struct {
		name    string
		cluster *string
		node    int32
		want    int16
	}{
		{"neither", nil, -1, 0},
		{"this cluster and broker", &cluster, self, 0},
		{"another cluster", &other, self, kerr.RebootstrapRequired.Code},
		{"another broker", &cluster, self + 1, kerr.RebootstrapRequired.Code},
		{"only the cluster", &cluster, -1, kerr.InvalidRequest.Code},
		{"only the broker", nil, self, kerr.InvalidRequest.Code},
	} {
		code, rng := apiVersionsV5(t, addr, tc.cluster, tc.node)
		if code != tc.want {
			t.Errorf("ApiVersions v5 naming %s: %v, want %v", tc.name, kerr.ErrorForCode(code), kerr.ErrorForCode(tc.want))
		}
		if tc.want == 0 && rng != [2]int16{0, 5} {
			t.Errorf("ApiVersions v5 naming %s lists ApiVersions as %v, want [0 5]", tc.name, rng)
		}
	}

	ctx := ctxFor(t, 60*time.Second)
	var log apiVersionsLog
	cl := kafkaClient(t, n, kgo.WithLogger(&log), kgo.DefaultProduceTopic("av5"), kgo.ConsumeTopics("av5"))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v5")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if fs := cl.PollFetches(ctx); fs.Err() != nil || fs.NumRecords() != 1 {
		t.Fatalf("consume: %v, %d records", fs.Err(), fs.NumRecords())
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if !slices.ContainsFunc(log.toBroker, func(v any) bool { return fmt.Sprint(v) == "5" }) {
		t.Errorf("franz-go sent ApiVersions to the broker at %v, want v5 among them", log.toBroker)
	}
}

// In a cluster every node answers ApiVersions v5 naming itself and the cluster
// id Metadata gives, and REBOOTSTRAP_REQUIRED naming another node.
func TestApiVersionsV5Cluster(t *testing.T) {
	t.Parallel()
	nodes := sharedKafkaCluster(t)
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Version = 13
	md := roundTrip(t, nodes[0].KafkaAddr(), mreq).(*kmsg.MetadataResponse)
	if len(md.Brokers) != 3 {
		t.Fatalf("Metadata lists %d brokers, want 3", len(md.Brokers))
	}
	cluster := *md.ClusterID
	for _, b := range md.Brokers {
		addr := fmt.Sprintf("%s:%d", b.Host, b.Port)
		for _, o := range md.Brokers {
			want := int16(0)
			if o.NodeID != b.NodeID {
				want = kerr.RebootstrapRequired.Code
			}
			if code, _ := apiVersionsV5(t, addr, &cluster, o.NodeID); code != want {
				t.Errorf("ApiVersions v5 to broker %d naming %q and broker %d: %v, want %v", b.NodeID, cluster, o.NodeID, kerr.ErrorForCode(code), kerr.ErrorForCode(want))
			}
		}
	}
}

// OffsetCommit v10 and OffsetFetch v10 name topics by id: a commit by id is
// stored for that topic, an id no topic has is UNKNOWN_TOPIC_ID (the rest of the
// request is answered), a fetch by id or of all the group's offsets answers each
// topic by its id; a franz-go group member, which uses both, commits and a
// second member resumes from its commit.
func TestOffsetsByTopicID(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "tid", qxd.TopicConfig{Partitions: 2})
	addr := n.KafkaAddr()
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Version = 13
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("tid")
	mreq.Topics = append(mreq.Topics, mt)
	id := roundTrip(t, addr, mreq).(*kmsg.MetadataResponse).Topics[0].TopicID
	unknown := id
	unknown[0] ^= 0xff

	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version, oc.Group = 10, "tid-g"
	for _, tid := range [][16]byte{id, unknown} {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.TopicID = tid
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 5
		rt.Partitions = append(rt.Partitions, rp)
		oc.Topics = append(oc.Topics, rt)
	}
	ocr := roundTrip(t, addr, oc).(*kmsg.OffsetCommitResponse)
	if len(ocr.Topics) != 2 || ocr.Topics[0].TopicID != id || ocr.Topics[0].Partitions[0].ErrorCode != 0 ||
		ocr.Topics[1].TopicID != unknown || ocr.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("OffsetCommit v10 of tid and an unknown id: %+v, want tid committed and UNKNOWN_TOPIC_ID", ocr.Topics)
	}

	fetch := func(topics []kmsg.OffsetFetchRequestGroupTopic) kmsg.OffsetFetchResponseGroup {
		t.Helper()
		of := kmsg.NewPtrOffsetFetchRequest()
		of.Version = 10
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group, g.Topics = "tid-g", topics
		of.Groups = append(of.Groups, g)
		r := roundTrip(t, addr, of).(*kmsg.OffsetFetchResponse)
		if len(r.Groups) != 1 || r.Groups[0].ErrorCode != 0 {
			t.Fatalf("OffsetFetch v10: %+v", r.Groups)
		}
		return r.Groups[0]
	}
	g := fetch([]kmsg.OffsetFetchRequestGroupTopic{{TopicID: id, Partitions: []int32{0, 1}}, {TopicID: unknown, Partitions: []int32{0}}})
	if len(g.Topics) != 2 || g.Topics[0].TopicID != id || len(g.Topics[0].Partitions) != 2 ||
		g.Topics[0].Partitions[0].Offset != 5 || g.Topics[0].Partitions[1].Offset != -1 ||
		g.Topics[1].TopicID != unknown || g.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Errorf("OffsetFetch v10 of tid/0, tid/1 and an unknown id: %+v", g.Topics)
	}
	g = fetch(nil)
	if len(g.Topics) != 1 || g.Topics[0].TopicID != id || len(g.Topics[0].Partitions) != 1 || g.Topics[0].Partitions[0].Offset != 5 {
		t.Errorf("OffsetFetch v10 of all of tid-g's offsets: %+v, want tid/0 at 5 by its id", g.Topics)
	}

	ctx := ctxFor(t, 60*time.Second)
	p := kafkaClient(t, n, kgo.DefaultProduceTopic("tid"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 4 {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var log versionLog
	member := func() *kgo.Client {
		return kafkaClient(t, n, kgo.WithLogger(&log), kgo.ConsumerGroup("tid-live"), kgo.ConsumeTopics("tid"),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	m1 := member()
	var first []*kgo.Record
	for len(first) < 2 {
		first = append(first, m1.PollRecords(ctx, 2-len(first)).Records()...)
		if ctx.Err() != nil {
			t.Fatal("the first member read nothing")
		}
	}
	if err := m1.CommitRecords(ctx, first...); err != nil {
		t.Fatal(err)
	}
	m1.Close()
	m2 := member()
	fs := m2.PollFetches(ctx)
	if fs.Err() != nil || fs.NumRecords() == 0 {
		t.Fatalf("second member: %v, %d records", fs.Err(), fs.NumRecords())
	}
	if got := fs.Records()[0]; got.Partition != 1 || got.Offset != first[len(first)-1].Offset+1 {
		t.Errorf("second member starts at %d/%d, want 1/%d (after the first member's commit)", got.Partition, got.Offset, first[len(first)-1].Offset+1)
	}
	for _, api := range []string{"OffsetCommit", "OffsetFetch"} {
		if v := log.max(api); v != 10 {
			t.Errorf("franz-go's group sent %s at v%d at most, want v10", api, v)
		}
	}
}
