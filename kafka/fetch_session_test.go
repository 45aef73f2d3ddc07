package kafka_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// sessionFetcher sends raw Fetch requests of one version for one topic and
// keeps the session it is given, as a client's FetchSessionHandler does.
type sessionFetcher struct {
	t       *testing.T
	addr    string
	version int16
	topic   string
	id      [16]byte
	session int32
	epoch   int32
}

// fetchPart is a partition of a fetch request: its fetch offset.
type fetchPart struct {
	p      int32
	offset int64
}

// fetch sends a fetch of parts, forgetting forget, with the fetcher's session
// id and epoch and the wait given, and returns the answer.
func (f *sessionFetcher) fetch(parts []fetchPart, forget []int32, wait time.Duration) *kmsg.FetchResponse {
	f.t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = f.version, 1<<20, 1, int32(wait/time.Millisecond)
	req.SessionID, req.SessionEpoch = f.session, f.epoch
	if len(parts) > 0 {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = f.topic, f.id
		for _, p := range parts {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p.p, p.offset, 1<<20
			ft.Partitions = append(ft.Partitions, fp)
		}
		req.Topics = append(req.Topics, ft)
	}
	if len(forget) > 0 {
		ff := kmsg.NewFetchRequestForgottenTopic()
		ff.Topic, ff.TopicID, ff.Partitions = f.topic, f.id, forget
		req.ForgottenTopics = append(req.ForgottenTopics, ff)
	}
	return roundTrip(f.t, f.addr, req).(*kmsg.FetchResponse)
}

// answered is what a fetch answer says per partition: its records (count) or
// its error, and its high watermark.
func answered(t *testing.T, resp *kmsg.FetchResponse) map[int32]string {
	t.Helper()
	out := map[int32]string{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				out[rp.Partition] = kerr.ErrorForCode(rp.ErrorCode).Error()
				continue
			}
			n := 0
			raw := rp.RecordBatches
			for len(raw) >= 12 {
				size := 12 + int(binary.BigEndian.Uint32(raw[8:12]))
				var b kmsg.RecordBatch
				if err := b.ReadFrom(raw[:size]); err != nil {
					t.Fatalf("partition %d: %v", rp.Partition, err)
				}
				n += int(b.NumRecords)
				raw = raw[size:]
			}
			out[rp.Partition] = fmt.Sprintf("%d records, hw %d", n, rp.HighWatermark)
		}
	}
	return out
}

// produceTo appends one record to each of parts of topic.
func produceTo(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, parts ...int32) {
	t.Helper()
	for _, p := range parts {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFetchSessionLifecycle: a full fetch with epoch 0 makes a session;
// incremental fetches add, update and forget partitions and are answered only
// the partitions with something to say; a wrong epoch, an unknown id and a
// change between names and topic ids are refused with Kafka's codes; a full
// fetch with epoch -1 closes the session. By name (v7, v12) and by topic id
// (v13, v18).
func TestFetchSessionLifecycle(t *testing.T) {
	n, c := startNode(t)
	ctx := ctxFor(t, 60*time.Second)
	cl := kafkaClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, version := range []int16{7, 12, 13, 18} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			topic := fmt.Sprintf("session-v%d", version)
			qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 3})
			produceTo(t, ctx, cl, topic, 0, 1)
			f := &sessionFetcher{t: t, addr: n.KafkaAddr(), version: version, topic: topic}
			if version >= 13 {
				f.id = topicID(t, ctx, cl, topic)
			}
			check := func(step string, resp *kmsg.FetchResponse, code int16, want map[int32]string) {
				t.Helper()
				if resp.ErrorCode != code {
					t.Fatalf("%s: code %v, want %v", step, kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(code))
				}
				if got := answered(t, resp); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s: answered %v, want %v", step, got, want)
				}
				for _, rt := range resp.Topics {
					if (version >= 13 && rt.TopicID != f.id) || (version < 13 && rt.Topic != topic) {
						t.Fatalf("%s: answered topic %q %x", step, rt.Topic, rt.TopicID)
					}
				}
			}

			// Full fetch, epoch 0: a session.
			resp := f.fetch([]fetchPart{{0, 0}, {1, 0}}, nil, 0)
			check("full", resp, 0, map[int32]string{0: "1 records, hw 1", 1: "1 records, hw 1"})
			if resp.SessionID == 0 {
				t.Fatal("full fetch with epoch 0 answered session id 0")
			}
			f.session, f.epoch = resp.SessionID, 1

			// Both offsets move on; nothing new: nothing to say.
			resp = f.fetch([]fetchPart{{0, 1}, {1, 1}}, nil, 0)
			check("incremental, no news", resp, 0, map[int32]string{})
			if resp.SessionID != f.session {
				t.Fatalf("incremental fetch answered session %d, want %d", resp.SessionID, f.session)
			}
			f.epoch++

			// A record on partition 1: only it is answered, though the fetch names
			// no partition; partition 2 is added.
			produceTo(t, ctx, cl, topic, 1)
			resp = f.fetch([]fetchPart{{2, 0}}, nil, 0)
			check("incremental, news on 1, 2 added", resp, 0, map[int32]string{1: "1 records, hw 2", 2: "0 records, hw 0"})
			f.epoch++

			// Partition 1 forgotten: its new record is not answered, partition 0's is.
			produceTo(t, ctx, cl, topic, 0, 1)
			resp = f.fetch([]fetchPart{{1, 2}}, []int32{1}, 0)
			check("incremental, 1 forgotten", resp, 0, map[int32]string{0: "1 records, hw 2"})
			f.epoch++

			// An offset out of range is an error, answered on every fetch.
			resp = f.fetch([]fetchPart{{0, 9}}, nil, 0)
			check("incremental, out of range", resp, 0, map[int32]string{0: kerr.OffsetOutOfRange.Error()})
			f.epoch++
			resp = f.fetch(nil, nil, 0)
			check("incremental, still out of range", resp, 0, map[int32]string{0: kerr.OffsetOutOfRange.Error()})
			f.epoch++
			resp = f.fetch([]fetchPart{{0, 2}}, nil, 0)
			check("incremental, back in range", resp, 0, map[int32]string{0: "0 records, hw 2"})
			f.epoch++

			// The same epoch again (a duplicate), an epoch ahead: refused, and
			// the session is unchanged.
			f.epoch--
			check("epoch behind", f.fetch(nil, nil, 0), kerr.InvalidFetchSessionEpoch.Code, map[int32]string{})
			f.epoch += 2
			check("epoch ahead", f.fetch(nil, nil, 0), kerr.InvalidFetchSessionEpoch.Code, map[int32]string{})
			f.epoch--

			// Names and topic ids are not mixed in a session.
			other := *f
			other.version = 12
			if version < 13 {
				other.version, other.id = 13, topicID(t, ctx, cl, topic)
			}
			check("other naming", other.fetch(nil, nil, 0), kerr.FetchSessionTopicIDError.Code, map[int32]string{})

			// An id never given.
			unknown := *f
			unknown.session = f.session ^ 0x5a5a
			check("unknown id", unknown.fetch(nil, nil, 0), kerr.FetchSessionIDNotFound.Code, map[int32]string{})

			// The session still answers at its epoch.
			produceTo(t, ctx, cl, topic, 2)
			check("incremental after errors", f.fetch(nil, nil, 0), 0, map[int32]string{2: "1 records, hw 1"})
			f.epoch++

			// Epoch -1 with the id: a sessionless fetch that closes the session.
			closing := *f
			closing.epoch = -1
			resp = closing.fetch([]fetchPart{{0, 2}}, nil, 0)
			check("close", resp, 0, map[int32]string{0: "0 records, hw 2"})
			if resp.SessionID != 0 {
				t.Fatalf("closing fetch answered session %d, want 0", resp.SessionID)
			}
			check("after close", f.fetch(nil, nil, 0), kerr.FetchSessionIDNotFound.Code, map[int32]string{})

			// Sessionless: session id 0 and epoch -1, as before sessions.
			sessionless := &sessionFetcher{t: t, addr: n.KafkaAddr(), version: version, topic: topic, id: f.id, epoch: -1}
			resp = sessionless.fetch([]fetchPart{{0, 2}}, nil, 0)
			check("sessionless", resp, 0, map[int32]string{0: "0 records, hw 2"})
			if resp.SessionID != 0 {
				t.Fatalf("sessionless fetch answered session %d", resp.SessionID)
			}
		})
	}
}

// TestFetchSessionForgetAll: an incremental fetch that forgets every partition
// closes the session and is answered as a sessionless fetch.
func TestFetchSessionForgetAll(t *testing.T) {
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "forget-all", qxd.TopicConfig{Partitions: 1})
	f := &sessionFetcher{t: t, addr: n.KafkaAddr(), version: 12, topic: "forget-all"}
	resp := f.fetch([]fetchPart{{0, 0}}, nil, 0)
	if resp.SessionID == 0 {
		t.Fatal("no session")
	}
	f.session, f.epoch = resp.SessionID, 1
	resp = f.fetch(nil, []int32{0}, 0)
	if resp.ErrorCode != 0 || resp.SessionID != 0 || len(resp.Topics) != 0 {
		t.Fatalf("forgetting every partition answered code %d, session %d, %d topics; want 0, 0, 0", resp.ErrorCode, resp.SessionID, len(resp.Topics))
	}
	f.epoch = 2
	if resp := f.fetch(nil, nil, 0); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("the emptied session answered %v, want FETCH_SESSION_ID_NOT_FOUND", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// TestFetchSessionLongPoll: an incremental fetch waits for an append, and ends
// when it comes, not at its max wait.
func TestFetchSessionLongPoll(t *testing.T) {
	n, c := startNode(t)
	ctx := ctxFor(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "session-poll", qxd.TopicConfig{Partitions: 2})
	cl := kafkaClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, version := range []int16{12, 18} {
		f := &sessionFetcher{t: t, addr: n.KafkaAddr(), version: version, topic: "session-poll"}
		if version >= 13 {
			f.id = topicID(t, ctx, cl, "session-poll")
		}
		resp := f.fetch([]fetchPart{{0, 0}, {1, 0}}, nil, 0)
		if resp.SessionID == 0 {
			t.Fatal("no session")
		}
		f.session, f.epoch = resp.SessionID, 1
		// Find the offsets to wait at: what was produced so far.
		var at []fetchPart
		for _, p := range resp.Topics[0].Partitions {
			at = append(at, fetchPart{p.Partition, p.HighWatermark})
		}
		resp = f.fetch(at, nil, 0)
		f.epoch++
		if len(resp.Topics) != 0 {
			t.Fatalf("v%d: nothing new, answered %v", version, answered(t, resp))
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(300 * time.Millisecond)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "session-poll", Partition: 1, Value: []byte("wake")}).FirstErr(); err != nil {
				t.Error(err)
			}
		}()
		start := time.Now()
		resp = f.fetch(nil, nil, 20*time.Second)
		took := time.Since(start)
		<-done
		f.epoch++
		got := answered(t, resp)
		if len(got) != 1 || got[1] == "" || got[1][:9] != "1 records" {
			t.Fatalf("v%d: long poll answered %v, want partition 1's record only", version, got)
		}
		if took > 10*time.Second {
			t.Fatalf("v%d: long poll took %v: not woken by the append", version, took)
		}
	}
}

// TestFetchSessionCacheFull: the node keeps DefaultFetchSessionSlots sessions;
// a full fetch beyond them is answered without a session (none is old enough
// to evict) until one is closed.
func TestFetchSessionCacheFull(t *testing.T) {
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "session-full", qxd.TopicConfig{Partitions: 1})
	nc, err := net.Dial("tcp", n.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ask := func(id, epoch int32) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxBytes, req.SessionID, req.SessionEpoch = 12, 1<<20, id, epoch
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "session-full"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		return onConn(t, nc, req).(*kmsg.FetchResponse)
	}
	var ids []int32
	for range 1000 {
		resp := ask(0, 0)
		if resp.SessionID == 0 || slices.Contains(ids, resp.SessionID) {
			t.Fatalf("session %d of 1000: id %d", len(ids)+1, resp.SessionID)
		}
		ids = append(ids, resp.SessionID)
	}
	if resp := ask(0, 0); resp.ErrorCode != 0 || resp.SessionID != 0 || len(resp.Topics) != 1 {
		t.Fatalf("session 1001 answered code %d, session %d, %d topics; want 0, 0 (no room) and the topic", resp.ErrorCode, resp.SessionID, len(resp.Topics))
	}
	ask(ids[500], -1)
	if resp := ask(0, 0); resp.SessionID == 0 {
		t.Fatal("no session once one was closed")
	}
	// Every other session still answers.
	if resp := ask(ids[0], 1); resp.ErrorCode != 0 || resp.SessionID != ids[0] {
		t.Fatalf("first session answered code %d, session %d", resp.ErrorCode, resp.SessionID)
	}
}

// fetchSniffer watches the Fetch requests and answers of franz-go's
// connections (kgo.Dialer): the sessions answered and the incremental fetches.
type fetchSniffer struct {
	mu          sync.Mutex
	answers     map[int32]int // session id → fetches answered in it without error
	errors      []int16       // top-level codes of fetch answers
	incremental int           // fetches sent with an epoch above 0
}

func (s *fetchSniffer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: nc, s: s, fetches: map[int32]int16{}}, nil
}

type sniffConn struct {
	net.Conn
	s          *fetchSniffer
	mu         sync.Mutex
	fetches    map[int32]int16 // correlation id → version of the fetches sent
	sent, read []byte
}

// frames cuts the whole frames off buf.
func frames(buf *[]byte) [][]byte {
	var out [][]byte
	for len(*buf) >= 4 {
		size := int(binary.BigEndian.Uint32(*buf))
		if len(*buf) < 4+size {
			break
		}
		out = append(out, (*buf)[4:4+size])
		*buf = (*buf)[4+size:]
	}
	return out
}

func (c *sniffConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.sent = append(c.sent, b...)
	for _, f := range frames(&c.sent) {
		key, version := int16(binary.BigEndian.Uint16(f)), int16(binary.BigEndian.Uint16(f[2:]))
		if key != kmsg.Fetch.Int16() {
			continue
		}
		c.fetches[int32(binary.BigEndian.Uint32(f[4:]))] = version
		// The header: key, version, correlation id, client id, and tags (none)
		// from v12.
		body := f[10+int(binary.BigEndian.Uint16(f[8:])):]
		if version >= 12 {
			body = body[1:]
		}
		req := kmsg.NewPtrFetchRequest()
		req.Version = version
		if err := req.ReadFrom(body); err == nil && req.SessionEpoch > 0 {
			c.s.mu.Lock()
			c.s.incremental++
			c.s.mu.Unlock()
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *sniffConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = append(c.read, b[:n]...)
	for _, f := range frames(&c.read) {
		corr := int32(binary.BigEndian.Uint32(f))
		version, ok := c.fetches[corr]
		if !ok {
			continue
		}
		delete(c.fetches, corr)
		body := f[4:]
		if version >= 12 {
			body = body[1:]
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = version
		if resp.ReadFrom(body) != nil {
			continue
		}
		c.s.mu.Lock()
		if resp.ErrorCode != 0 {
			c.s.errors = append(c.s.errors, resp.ErrorCode)
		} else if resp.SessionID != 0 {
			c.s.answers[resp.SessionID]++
		}
		c.s.mu.Unlock()
	}
	return n, err
}

// TestFetchSessionFranzGo: franz-go, which asks for sessions, keeps one while
// it consumes (the same session id answers its fetches, which are incremental)
// and reads every record, in order, from every partition.
func TestFetchSessionFranzGo(t *testing.T) {
	n, c := startNode(t)
	ctx := ctxFor(t, 90*time.Second)
	const parts, rounds, per = 4, 5, 50
	qxdtest.CreateTopic(t, c, "session-kgo", qxd.TopicConfig{Partitions: parts})
	prod := kafkaClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	sniff := &fetchSniffer{answers: map[int32]int{}}
	cons := kafkaClient(t, n, kgo.Dialer(sniff.dial), kgo.ConsumeTopics("session-kgo"), kgo.FetchMaxWait(500*time.Millisecond))
	got := map[int32][]string{}
	total := 0
	for round := range rounds {
		// Each round writes to some partitions only, so that the others have
		// nothing to say.
		for i := range per {
			p := int32((round + i%2) % parts)
			v := fmt.Sprintf("%d-%d", round, i)
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "session-kgo", Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		for want := (round + 1) * per; total < want; {
			fs := cons.PollFetches(ctx)
			if err := fs.Err(); err != nil {
				t.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				got[r.Partition] = append(got[r.Partition], string(r.Value))
				total++
			})
		}
	}
	if total != rounds*per {
		t.Fatalf("read %d records, want %d", total, rounds*per)
	}
	for p := range int32(parts) {
		var want []string
		for round := range rounds {
			for i := range per {
				if int32((round+i%2)%parts) == p {
					want = append(want, fmt.Sprintf("%d-%d", round, i))
				}
			}
		}
		if !slices.Equal(got[p], want) {
			t.Fatalf("partition %d read %v, want %v", p, got[p], want)
		}
	}
	sniff.mu.Lock()
	defer sniff.mu.Unlock()
	most := 0
	for _, k := range sniff.answers {
		most = max(most, k)
	}
	if most < rounds || sniff.incremental < rounds {
		t.Fatalf("franz-go kept no session: most fetches answered in one session %d, incremental fetches %d (sessions %v)", most, sniff.incremental, sniff.answers)
	}
	if len(sniff.errors) > 0 {
		t.Fatalf("fetch answers with session errors: %v", sniff.errors)
	}
	t.Logf("%d sessions; most fetches answered in one: %d; incremental fetches: %d", len(sniff.answers), most, sniff.incremental)
}

// TestFetchSessionRights: a session is its user's: another user's fetch does
// not find it nor close it; and rights are checked on every fetch of a session,
// incremental ones too, so that a partition the user may not read is refused
// every time and none of its records is ever answered.
func TestFetchSessionRights(t *testing.T) {
	n, certs := startSecureNode(t)
	ctx := ctxFor(t, 60*time.Second)
	adminCl := saslClient(t, n, certs, "admin", "admin-pw", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	readerCl := saslClient(t, n, certs, "reader", "reader-pw")
	ids := map[string][16]byte{}
	for _, topic := range []string{"orders", "secret"} {
		if _, err := kadm.NewClient(adminCl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		produceTo(t, ctx, adminCl, topic, 0)
		ids[topic] = topicID(t, ctx, adminCl, topic)
	}
	// fetch sends a fetch (franz-go's newest version: topics by id) of the
	// topics' partition 0 at offset.
	fetch := func(cl *kgo.Client, session, epoch int32, offset int64, topics ...string) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxBytes, req.SessionID, req.SessionEpoch = 1<<20, session, epoch
		for _, topic := range topics {
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic, ft.TopicID = topic, ids[topic]
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.FetchOffset, fp.PartitionMaxBytes = offset, 1<<20
			ft.Partitions = append(ft.Partitions, fp)
			req.Topics = append(req.Topics, ft)
		}
		resp, err := cl.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.FetchResponse)
	}
	// said is what an answer says by topic.
	said := func(resp *kmsg.FetchResponse) map[string]string {
		out := map[string]string{}
		for _, rt := range resp.Topics {
			for topic, id := range ids {
				if id == rt.TopicID {
					out[topic] = answered(t, &kmsg.FetchResponse{Topics: []kmsg.FetchResponseTopic{rt}})[0]
				}
			}
		}
		return out
	}

	resp := fetch(adminCl, 0, 0, 0, "orders", "secret")
	adminSession := resp.SessionID
	if adminSession == 0 || len(said(resp)) != 2 {
		t.Fatalf("admin's full fetch: session %d, answered %v", adminSession, said(resp))
	}
	if resp := fetch(readerCl, adminSession, 1, 1); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code || len(resp.Topics) != 0 {
		t.Fatalf("reader in admin's session: code %v, answered %v; want FETCH_SESSION_ID_NOT_FOUND and nothing", kerr.ErrorForCode(resp.ErrorCode), said(resp))
	}
	fetch(readerCl, adminSession, -1, 1, "orders")
	if resp := fetch(adminCl, adminSession, 1, 1, "orders", "secret"); resp.ErrorCode != 0 || resp.SessionID != adminSession {
		t.Fatalf("admin's session after the reader tried to close it: code %v, session %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
	}

	refused := kerr.TopicAuthorizationFailed.Error()
	resp = fetch(readerCl, 0, 0, 0, "orders", "secret")
	readerSession := resp.SessionID
	if got := said(resp); readerSession == 0 || got["orders"] != "1 records, hw 1" || got["secret"] != refused {
		t.Fatalf("reader's full fetch: session %d, answered %v", readerSession, got)
	}
	resp = fetch(readerCl, readerSession, 1, 1, "orders")
	if got := said(resp); resp.ErrorCode != 0 || fmt.Sprint(got) != fmt.Sprint(map[string]string{"secret": refused}) {
		t.Fatalf("reader's incremental fetch: code %v, answered %v; want secret refused only", kerr.ErrorForCode(resp.ErrorCode), got)
	}
	produceTo(t, ctx, adminCl, "secret", 0)
	produceTo(t, ctx, adminCl, "orders", 0)
	resp = fetch(readerCl, readerSession, 2, 0)
	if got := said(resp); fmt.Sprint(got) != fmt.Sprint(map[string]string{"orders": "1 records, hw 2", "secret": refused}) {
		t.Fatalf("reader's incremental fetch after appends: answered %v; want orders' record and secret refused", got)
	}
}

// TestFetchSessionTopicRecreated: a session naming a topic by id never reads
// the topic made again under the same name: the old id is UNKNOWN_TOPIC_ID on
// every fetch, and none of the new topic's records is answered.
func TestFetchSessionTopicRecreated(t *testing.T) {
	n, c := startNode(t)
	ctx := ctxFor(t, 60*time.Second)
	cl := kafkaClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	qxdtest.CreateTopic(t, c, "remade", qxd.TopicConfig{Partitions: 1})
	produceTo(t, ctx, cl, "remade", 0)
	f := &sessionFetcher{t: t, addr: n.KafkaAddr(), version: 18, topic: "remade", id: topicID(t, ctx, cl, "remade")}
	resp := f.fetch([]fetchPart{{0, 1}}, nil, 0)
	if resp.SessionID == 0 {
		t.Fatal("no session")
	}
	f.session, f.epoch = resp.SessionID, 1
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopic(ctx, "remade"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, "remade"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("create the topic again: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Produce v13 names the topic by id too: a client that knew the old topic
	// must purge it (franz-go abandons its records with UNKNOWN_TOPIC_ID once its
	// metadata shows the new id), so the new topic's records come from a new one.
	fresh := kafkaClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, ctx, fresh, "remade", 0)
	produceTo(t, ctx, fresh, "remade", 0)
	for range 2 {
		resp := f.fetch(nil, nil, 0)
		f.epoch++
		if got := answered(t, resp); resp.ErrorCode != 0 || fmt.Sprint(got) != fmt.Sprint(map[int32]string{0: kerr.UnknownTopicID.Error()}) {
			t.Fatalf("the old id after the topic was made again: code %v, answered %v; want UNKNOWN_TOPIC_ID", kerr.ErrorForCode(resp.ErrorCode), got)
		}
	}
}
