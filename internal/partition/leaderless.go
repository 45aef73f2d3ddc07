package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// Reads that work while JetStream's meta group has no leader (ErrNoMetaLeader)
// and the stream's does: JetStream then refuses every leader message get, but the
// stream leader still answers the stream's info, and every replica that holds a
// message answers a direct get for it. A message at a sequence never changes (a
// replica stores only committed entries, in order), so a replica that holds
// sequence seq answers the leader's bytes; one behind the leader does not hold
// the latest sequences and answers not found. These reads take a replica's
// answer only where it cannot differ from the leader's, and ask another replica
// (a direct get reaches one the NATS server picks at random) where it can.

// replicaTries bounds the direct gets one read makes while the leader's message
// get is refused: a replica behind the leader answers not found, and with
// three replicas the leader's copy is missed by all of them with probability
// (2/3)^replicaTries.
const replicaTries = 3 * IntactTriesPerReplica

// replicaRetryPause is the pause between those direct gets: a replica behind a
// newly elected leader catches up within milliseconds.
const replicaRetryPause = 20 * time.Millisecond

func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(replicaRetryPause):
		return nil
	}
}

// GetAt returns the message stored at exactly stream sequence seq, as the stream
// leader stores it, or semantics.ErrNoBatch when the leader holds none there. It
// asks with a direct get first (raw bytes, from any replica that holds seq); a
// replica that does not (one behind, or seq removed) answers not found, and the
// leader is asked. While the leader's get is refused for want of a meta leader
// (ErrNoMetaLeader), it asks replicas again, up to replicaTries times, and returns
// the refusal if none holds seq.
//
// On a compacted topic a replica behind may still hold a message the leader has
// removed: a caller that must not see one reads with Get.
func (r *Reader) GetAt(ctx context.Context, seq uint64) (Msg, error) {
	req, _ := json.Marshal(msgGetRequest{Seq: seq})
	var err error
	for try := 0; try < replicaTries; try++ {
		if try > 0 {
			if perr := pause(ctx); perr != nil {
				return Msg{}, perr
			}
		}
		if m, derr := r.getDirect(ctx, req); derr == nil && m.Seq == seq {
			return m, nil
		}
		if ctx.Err() != nil {
			return Msg{}, ctx.Err()
		}
		var m Msg
		if m, err = r.leaderGet(ctx, msgGetRequest{Seq: seq}); !errors.Is(err, ErrNoMetaLeader) {
			return m, err
		}
	}
	return Msg{}, fmt.Errorf("partition %s: read stream sequence %d: no replica holds it and its leader cannot be asked: %w", r.name(), seq, err)
}

// GetRecentFor returns the last message stored on subject, as GetLastFor does, or
// semantics.ErrNoBatch. While the leader's get is refused for want of a meta
// leader (ErrNoMetaLeader), it returns the last one a replica holds (a direct
// get), which from a replica behind the leader may be an earlier one, or
// semantics.ErrNoBatch when that replica holds none yet: only for callers to
// whom an earlier message on subject serves as well (a checkpoint to replay the
// log from).
func (r *Reader) GetRecentFor(ctx context.Context, subject string) (Msg, error) {
	m, err := r.GetLastFor(ctx, subject)
	if r.Direct || !errors.Is(err, ErrNoMetaLeader) {
		return m, err
	}
	req, _ := json.Marshal(msgGetRequest{LastFor: subject})
	return r.getDirect(ctx, req)
}

// AllOn returns every message stored on subject from st.FirstSeq to st.LastSeq,
// where st is the stream leader's state (StreamInfo), in order: the leader's
// next-by-subject gets. While they are refused for want of a meta leader
// (ErrNoMetaLeader), it asks the leader how many messages it holds on subject
// (the stream's info, which the leader answers), and replicas for them with
// direct gets: a replica's next message on subject at or after a sequence, if
// it is at or before st.LastSeq, is the leader's too (a replica holds a prefix
// of the leader's log); a replica that answers none before all counted were
// found is behind, and another is asked, up to replicaTries times in a row.
// Meant for subjects that hold few messages (a partition's abort markers).
func (r *Reader) AllOn(ctx context.Context, subject string, st StreamState) ([]Msg, error) {
	if st.Msgs == 0 {
		return nil, nil
	}
	var out []Msg
	for seq := st.FirstSeq; seq <= st.LastSeq; {
		m, err := r.GetFor(ctx, seq, subject)
		if errors.Is(err, semantics.ErrNoBatch) {
			return out, nil
		}
		if errors.Is(err, ErrNoMetaLeader) && !r.Direct {
			return r.allOnReplicas(ctx, subject, st, out, seq)
		}
		if err != nil {
			return nil, err
		}
		if m.Seq > st.LastSeq {
			return out, nil
		}
		out = append(out, m)
		seq = m.Seq + 1
	}
	return out, nil
}

func (r *Reader) allOnReplicas(ctx context.Context, subject string, st StreamState, out []Msg, seq uint64) ([]Msg, error) {
	count, err := r.SubjectCount(ctx, subject)
	if err != nil {
		return nil, err
	}
	misses := 0
	for seq <= st.LastSeq && uint64(len(out)) < count {
		req, _ := json.Marshal(msgGetRequest{Seq: seq, NextFor: subject})
		m, err := r.getDirect(ctx, req)
		switch {
		case err == nil && m.Seq > st.LastSeq:
			// A replica past the leader's state holds all of it.
			return out, nil
		case err == nil:
			out = append(out, m)
			seq, misses = m.Seq+1, 0
			continue
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		if misses++; misses >= replicaTries {
			// Not semantics.ErrNoBatch, which the replicas answered: the leader
			// holds the messages, and a later read may find them.
			return nil, semantics.Errorf(semantics.ErrUnavailable, "partition %s: read the messages on %s: the leader holds %d, no replica answered more than %d (%v); retry",
				r.name(), subject, count, len(out), err)
		}
		if err := pause(ctx); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SubjectCount returns how many messages the stream leader holds on subject (a
// literal subject), from the stream's info.
func (r *Reader) SubjectCount(ctx context.Context, subject string) (uint64, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	req, _ := json.Marshal(struct {
		SubjectsFilter string `json:"subjects_filter"`
	}{subject})
	resp, err := r.nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamInfoPrefix, r.Stream), req)
	if err != nil {
		return 0, r.wrap(err)
	}
	var out struct {
		Error *apiError `json:"error"`
		State struct {
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return 0, fmt.Errorf("partition %s: count the messages on %s: %w", r.name(), subject, err)
	}
	if out.Error != nil {
		return 0, r.apiErr(out.Error)
	}
	return out.State.Subjects[subject], nil
}

// Held is the set of stream sequences the stream leader held a message at when
// Reader.LeaderHeld read it: from FirstSeq to LastSeq, less those it had
// removed. A sequence it names was held then; one it leaves out was removed, and
// a removal is never undone, so no later read finds a message there either.
type Held struct {
	FirstSeq uint64
	LastSeq  uint64
	removed  map[uint64]struct{}
}

// Next returns the first sequence at seq or after it, up to last, that h holds,
// and false when there is none.
func (h Held) Next(seq, last uint64) (uint64, bool) {
	for seq = max(seq, h.FirstSeq); seq <= min(last, h.LastSeq); seq++ {
		if _, gone := h.removed[seq]; !gone {
			return seq, true
		}
	}
	return 0, false
}

// LeaderHeld reads which sequences the stream leader holds a message at: the
// stream's info with its deleted sequences listed (JetStream's deleted_details),
// which the leader answers while JetStream's meta group has no leader. The
// answer lists every removed sequence from the first to the last stored one:
// meant for the reads that cannot wait for a meta leader, since on a compacted
// stream that list can be long.
func (r *Reader) LeaderHeld(ctx context.Context) (Held, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	resp, err := r.nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamInfoPrefix, r.Stream), []byte(`{"deleted_details":true}`))
	if err != nil {
		return Held{}, r.wrap(err)
	}
	var out struct {
		Error *apiError `json:"error"`
		State struct {
			FirstSeq uint64   `json:"first_seq"`
			LastSeq  uint64   `json:"last_seq"`
			Msgs     uint64   `json:"messages"`
			Deleted  []uint64 `json:"deleted"`
		} `json:"state"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return Held{}, fmt.Errorf("partition %s: list the removed sequences: %w", r.name(), err)
	}
	if out.Error != nil {
		return Held{}, r.apiErr(out.Error)
	}
	s := out.State
	h := Held{FirstSeq: s.FirstSeq, LastSeq: s.LastSeq, removed: make(map[uint64]struct{}, len(s.Deleted))}
	for _, seq := range s.Deleted {
		h.removed[seq] = struct{}{}
	}
	if s.Msgs == 0 {
		h.FirstSeq = s.LastSeq + 1 // nothing held
	} else if s.LastSeq-s.FirstSeq+1 != s.Msgs+uint64(len(h.removed)) {
		return Held{}, fmt.Errorf("partition %s: list the removed sequences: the leader holds %d messages from sequence %d to %d and lists %d removed",
			r.name(), s.Msgs, s.FirstSeq, s.LastSeq, len(h.removed))
	}
	return h, nil
}

// Gapless returns r as a semantics.BatchSource for a stream that holds a message
// at every sequence from st.FirstSeq to st.LastSeq (a topic that is not
// compacted; st is the stream leader's state): there the first message at or
// after a sequence is the one at exactly it, which GetAt reads from any replica
// that holds it, so offset lookups work while JetStream's meta group has no
// leader. Outside that range, or where nothing is stored at the sequence (a
// damaged store), it asks the leader as Reader.BatchAtOrAfter does.
func (r *Reader) Gapless(st StreamState) semantics.BatchSource {
	return gapless{r: r, first: st.FirstSeq, last: st.LastSeq}
}

type gapless struct {
	r           *Reader
	first, last uint64
}

func (g gapless) BatchAtOrAfter(ctx context.Context, seq uint64) (uint64, semantics.BatchHeader, error) {
	if seq = max(seq, g.first); seq > g.last || g.first == 0 {
		return g.r.BatchAtOrAfter(ctx, seq)
	}
	m, err := g.r.GetAt(ctx, seq)
	if errors.Is(err, semantics.ErrNoBatch) {
		return g.r.BatchAtOrAfter(ctx, seq)
	}
	if err != nil {
		return 0, semantics.BatchHeader{}, err
	}
	h, err := semantics.PeekBatchHeader(m.Data)
	if err != nil {
		return 0, semantics.BatchHeader{}, fmt.Errorf("partition %s: message %d: %w", g.r.name(), m.Seq, err)
	}
	return m.Seq, h, nil
}
