// Package partition reads one partition's JetStream stream: messages by sequence,
// record batch headers for offset lookups, and the partition's offsets (log start,
// high watermark). Both the SDK and the node use it.
package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// requestTimeout bounds one JetStream API request: a request sent to a node that is
// dying can be lost without a "no responders" answer.
const requestTimeout = 5 * time.Second

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, requestTimeout)
}

// Msg is one stored message.
type Msg struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
	Time    time.Time
}

// Reader reads one partition stream. Direct reads may be answered by any replica
// (fast, possibly a little behind); the others go to the stream leader.
type Reader struct {
	nc     *nats.Conn
	Topic  string
	P      int32
	Stream string
	filter string
	Direct bool
}

// NewReader returns a Reader of partition p of topic.
func NewReader(nc *nats.Conn, topic string, p int32, direct bool) *Reader {
	return &Reader{nc: nc, Topic: topic, P: p, Stream: semantics.StreamName(topic, p),
		filter: semantics.StreamSubject(topic, p), Direct: direct}
}

type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
}

type apiError struct {
	Code        int    `json:"code"`
	ErrCode     uint16 `json:"err_code"`
	Description string `json:"description"`
}

const errCodeMessageNotFound = 10037
const errCodeStreamNotFound = 10059

// ErrNoMetaLeader is the cause (errors.Is) of a leader message get that JetStream
// refused because its meta group has no leader (JetStream error 10008, "JetStream
// system temporarily unavailable"): it answers so from every node, even for a
// stream whose own leader is elected. The stream's leader still answers its info,
// and every replica direct gets; GetAt and the readers' fallbacks use those.
var ErrNoMetaLeader = errors.New("JetStream's meta group has no leader")

// JetStream's answers while a stream or the cluster is between leaders.
const (
	errCodeClusterNotAvailable = 10008
	errCodeClusterNotLeader    = 10009
	errCodeStreamOffline       = 10118
)

// Get returns the first message stored at sequence seq or later, or
// semantics.ErrNoBatch.
func (r *Reader) Get(ctx context.Context, seq uint64) (Msg, error) {
	if seq == 0 {
		seq = 1
	}
	return r.get(ctx, msgGetRequest{Seq: seq, NextFor: r.filter})
}

// GetFor returns the first message stored on subject at sequence seq or later, or
// semantics.ErrNoBatch.
func (r *Reader) GetFor(ctx context.Context, seq uint64, subject string) (Msg, error) {
	if seq == 0 {
		seq = 1
	}
	return r.get(ctx, msgGetRequest{Seq: seq, NextFor: subject})
}

// GetLast returns the last stored message, or semantics.ErrNoBatch.
func (r *Reader) GetLast(ctx context.Context) (Msg, error) {
	return r.get(ctx, msgGetRequest{LastFor: r.filter})
}

// GetLastFor returns the last message stored on subject, or semantics.ErrNoBatch.
func (r *Reader) GetLastFor(ctx context.Context, subject string) (Msg, error) {
	return r.get(ctx, msgGetRequest{LastFor: subject})
}

// get answers mreq from the stream leader, or, for a direct Reader, from any
// replica that holds an answer. A replica's "none there" is not the partition's:
// a follower answers direct gets once it is within 90% of the leader and goes on
// answering when it falls behind again, so one that has not applied the latest
// appends, or none yet, answers not found for batches the leader stores and has
// acknowledged. A direct Reader then asks the leader, and returns
// semantics.ErrNoBatch only when the leader holds none either, or, while the
// leader's get is refused for want of a meta leader (ErrNoMetaLeader), when the
// replica held none.
func (r *Reader) get(ctx context.Context, mreq msgGetRequest) (Msg, error) {
	if !r.Direct {
		return r.leaderGet(ctx, mreq)
	}
	req, _ := json.Marshal(mreq)
	m, err := r.getDirect(ctx, req)
	if !errors.Is(err, semantics.ErrNoBatch) {
		return m, err
	}
	lm, lerr := r.leaderGet(ctx, mreq)
	if errors.Is(lerr, ErrNoMetaLeader) {
		return m, err
	}
	return lm, lerr
}

// leaderGet asks the stream leader (JetStream's message get).
func (r *Reader) leaderGet(ctx context.Context, mreq msgGetRequest) (Msg, error) {
	seq := mreq.Seq
	req, _ := json.Marshal(mreq)
	ctx, cancel := bounded(ctx)
	defer cancel()
	resp, err := r.nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamMsgGetPrefix, r.Stream), req)
	if err != nil {
		return Msg{}, r.wrap(err)
	}
	var out struct {
		Error   *apiError `json:"error"`
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return Msg{}, fmt.Errorf("partition %s: read message %d: %w", r.name(), seq, err)
	}
	if out.Error != nil {
		return Msg{}, r.apiErr(out.Error)
	}
	if out.Message == nil {
		return Msg{}, fmt.Errorf("partition %s: read message %d: empty response", r.name(), seq)
	}
	m := Msg{Seq: out.Message.Seq, Subject: out.Message.Subject, Data: out.Message.Data, Time: out.Message.Time}
	if len(out.Message.Header) > 0 {
		h, err := decodeHeaders(out.Message.Header)
		if err != nil {
			return Msg{}, err
		}
		m.Header = h
	}
	return m, nil
}

// ReplicaHighWatermark returns a high watermark the partition has reached: the
// offset after the last batch held by whichever replica answers a direct get
// first (a non-direct Reader asks the leader). It may be below the leader's, but
// never above what the leader acknowledged (followers store only committed
// appends), and the high watermark never goes back, so an offset at or below
// it is in range. Unlike ReadOffsets it needs no answer from the stream's
// leader: a paused or cut-off leader costs DirectAttempt, not the request
// timeout. semantics.ErrNoBatch when the replica that answered holds no batch.
func (r *Reader) ReplicaHighWatermark(ctx context.Context) (int64, error) {
	var m Msg
	var err error
	if r.Direct {
		req, _ := json.Marshal(msgGetRequest{LastFor: r.filter})
		m, err = r.getDirect(ctx, req)
	} else {
		m, err = r.leaderGet(ctx, msgGetRequest{LastFor: r.filter})
	}
	if err != nil {
		return 0, err
	}
	h, err := semantics.PeekBatchHeader(m.Data)
	if err != nil {
		return 0, fmt.Errorf("partition %s: message %d: %w", r.name(), m.Seq, err)
	}
	return h.LastOffset() + 1, nil
}

// getDirect sends a direct get, which any replica of the stream may answer, with
// DirectRead: a replica that never answers (its node paused or cut off) costs
// DirectAttempt, not the whole request timeout.
func (r *Reader) getDirect(ctx context.Context, req []byte) (Msg, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	subject := semantics.Subject(semantics.JSDirectGetPrefix, r.Stream)
	resp, err := DirectRead(ctx, func(ctx context.Context, _ func()) (*nats.Msg, error) {
		return r.nc.RequestWithContext(ctx, subject, req)
	})
	if err != nil {
		return Msg{}, r.wrap(err)
	}
	if len(resp.Data) == 0 {
		switch resp.Header.Get("Status") {
		case "404":
			return Msg{}, semantics.ErrNoBatch
		case "":
		default:
			return Msg{}, fmt.Errorf("partition %s: read: %s %s", r.name(), resp.Header.Get("Status"), resp.Header.Get("Description"))
		}
	}
	seq, err := strconv.ParseUint(resp.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return Msg{}, fmt.Errorf("partition %s: read: bad sequence header: %w", r.name(), err)
	}
	t, _ := time.Parse(time.RFC3339Nano, resp.Header.Get("Nats-Time-Stamp"))
	return Msg{Seq: seq, Subject: resp.Header.Get("Nats-Subject"), Header: resp.Header, Data: resp.Data, Time: t}, nil
}

func decodeHeaders(b []byte) (nats.Header, error) {
	m, err := nats.DecodeHeadersMsg(b)
	if err != nil {
		return nil, fmt.Errorf("decode stored headers: %w", err)
	}
	return m, nil
}

func (r *Reader) name() string { return semantics.PartitionString(r.Topic, r.P) }

func (r *Reader) wrap(err error) error {
	if errors.Is(err, nats.ErrNoResponders) {
		return semantics.Errorf(semantics.ErrUnavailable, "partition %s: no JetStream server answered: %v", r.name(), err)
	}
	if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return semantics.Errorf(semantics.ErrTimeout, "partition %s: %v", r.name(), err)
	}
	return fmt.Errorf("partition %s: %w", r.name(), err)
}

func (r *Reader) apiErr(e *apiError) error {
	switch e.ErrCode {
	case errCodeMessageNotFound:
		return semantics.ErrNoBatch
	case errCodeStreamNotFound:
		return semantics.Errorf(semantics.ErrUnknownTopic, "partition %s: stream %s not found", r.name(), r.Stream)
	case errCodeClusterNotAvailable:
		// Between meta leaders: worth asking again, or asking otherwise.
		return fmt.Errorf("%w (%w)", semantics.Errorf(semantics.ErrUnavailable, "partition %s: %s (JetStream error %d)", r.name(), e.Description, e.ErrCode), ErrNoMetaLeader)
	case errCodeClusterNotLeader, errCodeStreamOffline:
		// Between leaders: worth asking again.
		return semantics.Errorf(semantics.ErrUnavailable, "partition %s: %s (JetStream error %d)", r.name(), e.Description, e.ErrCode)
	}
	return fmt.Errorf("partition %s: %s (JetStream error %d)", r.name(), e.Description, e.ErrCode)
}

// BatchAtOrAfter implements semantics.BatchSource.
func (r *Reader) BatchAtOrAfter(ctx context.Context, seq uint64) (uint64, semantics.BatchHeader, error) {
	m, err := r.Get(ctx, seq)
	if err != nil {
		return 0, semantics.BatchHeader{}, err
	}
	h, err := semantics.PeekBatchHeader(m.Data)
	if err != nil {
		return 0, semantics.BatchHeader{}, fmt.Errorf("partition %s: message %d: %w", r.name(), m.Seq, err)
	}
	return m.Seq, h, nil
}

var _ semantics.BatchSource = (*Reader)(nil)

// StreamState is the part of a stream's state the offset rules need.
type StreamState struct {
	FirstSeq uint64
	LastSeq  uint64
	Msgs     uint64
	Bytes    uint64
	Leader   string
	Replicas []string
	// InSync are the replicas that are current: the leader, and the followers the
	// leader sees caught up and that are not offline (Kafka's in-sync replicas).
	InSync []string
	// Unheard are the followers the leader has not heard from for over
	// UnheardAfter while they lag its commits: cut from it or stopped. A read
	// served by one delivers nothing the leader stored since.
	Unheard []string
	// Silent are the followers that lag the leader's commits, each with how long
	// the leader has not heard from it (Unheard are those of them silent for over
	// UnheardAfter). A reader that has itself seen nothing from a follower for a
	// while judges with it sooner than UnheardAfter (see the consumer's read).
	Silent map[string]time.Duration
	// LogStart is the log start offset set by a trim (semantics.LogStartMetadata in
	// the stream's metadata), 0 when the partition was never trimmed.
	LogStart int64
	// Lost are the stream sequences the leader's store found lost when it rebuilt
	// a damaged block file (JetStream's state.lost; kept in memory only, so empty
	// again after the leader's next restart).
	Lost []uint64
}

// Missing counts the batches gone from the middle of the stored log: the
// sequences from FirstSeq to LastSeq that hold no message, or those the store
// reported lost if more. Only retention and trims remove a partition's batches,
// and both from the head, so on a topic that is not compacted anything missing
// means the leader's stored data is damaged (a truncated or lost block file).
// Compacted topics remove batches anywhere: 0 for them.
func (s StreamState) Missing(compact bool) uint64 {
	if compact {
		return 0
	}
	var gaps uint64
	if s.Msgs > 0 && s.LastSeq >= s.FirstSeq && s.LastSeq-s.FirstSeq+1 > s.Msgs {
		gaps = s.LastSeq - s.FirstSeq + 1 - s.Msgs
	}
	return max(gaps, uint64(len(s.Lost)))
}

// StreamInfo reads the stream's state from its leader.
func (r *Reader) StreamInfo(ctx context.Context) (StreamState, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	resp, err := r.nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamInfoPrefix, r.Stream), nil)
	if err != nil {
		return StreamState{}, r.wrap(err)
	}
	var out struct {
		Error *apiError `json:"error"`
		State struct {
			Msgs     uint64 `json:"messages"`
			Bytes    uint64 `json:"bytes"`
			FirstSeq uint64 `json:"first_seq"`
			LastSeq  uint64 `json:"last_seq"`
			Lost     *struct {
				Msgs []uint64 `json:"msgs"`
			} `json:"lost"`
		} `json:"state"`
		Config struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"config"`
		Cluster *struct {
			Leader   string `json:"leader"`
			Replicas []struct {
				Name    string        `json:"name"`
				Current bool          `json:"current"`
				Offline bool          `json:"offline"`
				Pending bool          `json:"pending"`
				Active  time.Duration `json:"active"`
			} `json:"replicas"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return StreamState{}, fmt.Errorf("partition %s: stream info: %w", r.name(), err)
	}
	if out.Error != nil {
		return StreamState{}, r.apiErr(out.Error)
	}
	s := StreamState{FirstSeq: out.State.FirstSeq, LastSeq: out.State.LastSeq, Msgs: out.State.Msgs, Bytes: out.State.Bytes}
	if out.State.Lost != nil {
		s.Lost = out.State.Lost.Msgs
	}
	if v, ok := out.Config.Metadata[semantics.LogStartMetadata]; ok {
		if s.LogStart, err = strconv.ParseInt(v, 10, 64); err != nil || s.LogStart < 0 {
			return StreamState{}, fmt.Errorf("partition %s: stream metadata %s=%q is not an offset", r.name(), semantics.LogStartMetadata, v)
		}
	}
	if out.Cluster != nil {
		s.Leader = out.Cluster.Leader
		if s.Leader != "" {
			s.Replicas = append(s.Replicas, s.Leader)
			s.InSync = append(s.InSync, s.Leader)
		}
		for _, p := range out.Cluster.Replicas {
			s.Replicas = append(s.Replicas, p.Name)
			if s.Leader != "" && p.Current && !p.Offline && !p.Pending {
				s.InSync = append(s.InSync, p.Name)
			}
			if s.Leader != "" && !p.Current {
				if s.Silent == nil {
					s.Silent = make(map[string]time.Duration, len(out.Cluster.Replicas))
				}
				s.Silent[p.Name] = p.Active
				if p.Active > UnheardAfter {
					s.Unheard = append(s.Unheard, p.Name)
				}
			}
		}
	}
	return s, nil
}

// UnheardAfter is how long a stream's leader must not have heard from a follower
// that lags its commits for StreamInfo to list it in Unheard. The leader hears
// from a follower each time it answers an append, many times a second while
// records are stored; a follower that lags without answering for this long is
// cut from the leader or stopped.
const UnheardAfter = 1500 * time.Millisecond

// Offsets is a partition's offset range and the stream state it was read from.
type Offsets struct {
	StreamState
	// LogStart is the first stored offset; HighWatermark the next offset to be given.
	LogStart      int64
	HighWatermark int64
	// FirstBatchSeq is the sequence of the batch holding LogStart; LastBatchSeq and
	// LastBatchBase the sequence and base offset of the last stored batch (all 0 when
	// nothing is stored). Reads from either end need no search with them.
	FirstBatchSeq uint64
	LastBatchSeq  uint64
	LastBatchBase int64
	// Behind says the high watermark may be below the leader's: the state was
	// answered for a replicated stream without a leader (JetStream then lets a
	// replica answer with its own state, which may be behind: nats-server v2.15.2
	// jetstream_api.go jsStreamInfoRequest, isGroupLeaderless), or the last batch
	// read is not the state's last and the leader did not give it, or the
	// partition holds no batch and the high watermark came from a checkpoint
	// (read from any replica of the checkpoint bucket). An offset past such a
	// high watermark is not known to be out of range.
	Behind bool
}

// ReadOffsets reads the partition's log start and high watermark. When every batch
// has aged out, or the stream's last messages are gone (a compacted topic's
// expired tombstones), the high watermark comes from checkpoint (the writer's last
// checkpointed next offset; 0 when none), so offsets never restart at 0; the
// stored batches alone answer otherwise, and checkpoint is not called. A trim
// (DeleteRecords) moves the log start past the first stored batch's base offset:
// the stream's metadata keeps the exact offset, and the high watermark is never
// below it.
//
// The batches the state counts are read after it: when none is found there (the
// leader removed them since, by retention or a trim, or, while JetStream's meta
// group has no leader, a direct read reached a replica that holds none yet), the
// state is read again, up to offsetReads times in all, and then the error is
// semantics.ErrUnavailable, worth a retry: never semantics.ErrNoBatch.
func (r *Reader) ReadOffsets(ctx context.Context, checkpoint func(context.Context) (int64, error)) (Offsets, error) {
	var err error
	for range offsetReads {
		var o Offsets
		if o, err = r.readOffsets(ctx, checkpoint); !errors.Is(err, semantics.ErrNoBatch) {
			return o, err
		}
	}
	return Offsets{}, semantics.Errorf(semantics.ErrUnavailable,
		"partition %s: read offsets: %d times the batches its stream's leader counted were not found when read; retry", r.name(), offsetReads)
}

// offsetReads bounds the reads of a partition's state ReadOffsets makes when the
// batches a state counts are not found.
const offsetReads = 3

func (r *Reader) readOffsets(ctx context.Context, checkpoint func(context.Context) (int64, error)) (Offsets, error) {
	st, err := r.StreamInfo(ctx)
	if err != nil {
		return Offsets{}, err
	}
	// A replicated stream's state says who leads it (Replicas lists the leader
	// and its followers); one without a leader was answered by a replica.
	o := Offsets{StreamState: st, Behind: len(st.Replicas) > 0 && st.Leader == ""}
	var next int64
	fromCheckpoint := func() error {
		if checkpoint == nil {
			return nil
		}
		var err error
		next, err = checkpoint(ctx)
		return err
	}
	if st.Msgs == 0 {
		if err := fromCheckpoint(); err != nil {
			return Offsets{}, err
		}
		next = max(next, st.LogStart)
		o.LogStart, o.HighWatermark = next, next
		// The checkpoint is read from any replica of its bucket, which may be
		// behind the writer's last one: once the stream has held batches (they
		// aged out or were trimmed), an offset past it is not known to be out of
		// range. A stream that never held one has no later checkpoint: its high
		// watermark is the state's, and an offset past it is out of range.
		o.Behind = o.Behind || checkpoint != nil && st.LastSeq > 0
		return o, nil
	}
	// With a direct reader, the ends may come from a replica behind the state's
	// leader: the high watermark is then the replica's, never beyond what is
	// stored, and LastBatchSeq says which batch it was read from (a read from the
	// high watermark starts right after it).
	firstSeq, first, err := r.BatchAtOrAfter(ctx, st.FirstSeq)
	if err != nil {
		return Offsets{}, err
	}
	lastMsg, err := r.GetLast(ctx)
	if err != nil {
		return Offsets{}, err
	}
	last, err := semantics.PeekBatchHeader(lastMsg.Data)
	if err != nil {
		return Offsets{}, err
	}
	if lastMsg.Seq < st.LastSeq {
		// The replica that answered may be behind the leader, and stay so: a
		// follower cut from its leader (a cut between two nodes while the third
		// reaches both) answers direct gets with what it held at the cut for as
		// long as the cut lasts, and a high watermark from it, below offsets the
		// leader stored and a group committed, would send a consumer starting at
		// such an offset back to the reset policy's start. Ask the leader too.
		if r.Direct {
			lm, err := r.leaderGet(ctx, msgGetRequest{LastFor: r.filter})
			if err == nil && lm.Seq > lastMsg.Seq {
				if h, err := semantics.PeekBatchHeader(lm.Data); err == nil {
					lastMsg, last = lm, h
				}
			}
			// Without the leader's last batch, the replica's and the checkpoint
			// (a replica's copy too) may both be behind.
			o.Behind = o.Behind || err != nil
		}
		if err := fromCheckpoint(); err != nil {
			return Offsets{}, err
		}
	}
	o.HighWatermark = max(last.LastOffset()+1, next, st.LogStart)
	o.LogStart = min(max(first.BaseOffset, st.LogStart), o.HighWatermark)
	o.FirstBatchSeq, o.LastBatchSeq, o.LastBatchBase = firstSeq, lastMsg.Seq, last.BaseOffset
	return o, nil
}

// IntactTriesPerReplica is how many direct gets GetIntact makes per replica of
// the stream. Each replica that answers direct gets subscribes to them in one
// queue group (nats-server v2.15.2 stream.go subscribeToDirect, group "_sys_"),
// and the server a request comes in on picks one member at random, weighing its
// own subscriber and each other server holding one alike (client.go
// processMsgResults: a random start in the queue list, weightedQSubIndex, and
// the first subscriber from there, local or routed, takes it); the server a
// routed request reaches answers from its own replica. So a request through a
// node holding a damaged copy is answered by that copy only one time in three
// with three replicas answering, and all 3×IntactTriesPerReplica answers come
// from it with probability (1/3)^(3×IntactTriesPerReplica). A follower joins the
// group only once caught up (checked every 2 s after a leader change), so one
// behind answers none.
const IntactTriesPerReplica = 8

// GetIntact returns the message stored at stream sequence seq from a replica
// whose copy passes the record batch checks (semantics.ParseBatchHeader), for a
// reader whose copy of it failed them. It asks with direct gets, which any
// replica of the stream may answer, whichever node the reader is connected to
// (JetStream's leader-only message get always gives the leader's copy),
// IntactTriesPerReplica times per replica; each request is bounded by
// requestTimeout and ctx. It never returns a copy that fails the checks. The error,
// when no answer passed, is the last failure: ErrCorruptMessage when every copy
// seen failed the checks, semantics.ErrNoBatch when none holds the sequence.
// With one replica it asks nothing and returns ErrCorruptMessage.
func (r *Reader) GetIntact(ctx context.Context, seq uint64, replicas int) (Msg, error) {
	last := semantics.Errorf(semantics.ErrCorruptMessage, "partition %s: stream sequence %d: no other replica to read it from", r.name(), seq)
	if replicas <= 1 {
		return Msg{}, last
	}
	req, _ := json.Marshal(msgGetRequest{Seq: seq})
	for range replicas * IntactTriesPerReplica {
		if ctx.Err() != nil {
			return Msg{}, ctx.Err()
		}
		m, err := r.getDirect(ctx, req)
		switch {
		case err != nil:
			last = err
			continue
		case m.Seq != seq:
			last = fmt.Errorf("partition %s: a replica answered sequence %d for %d", r.name(), m.Seq, seq)
			continue
		}
		if _, err := semantics.ParseBatchHeader(m.Data); err != nil {
			last = fmt.Errorf("partition %s: stream sequence %d: %w", r.name(), seq, err)
			continue
		}
		return m, nil
	}
	return Msg{}, last
}
