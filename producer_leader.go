// Where a partition's batches go when its leader changes: JetStream's
// leader-elected advisories, the client's moves to another node, and the writer
// of the node that leads the partition (semantics.WriterDirectSubject).

package qxd

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// A partition whose leader dies (a crash, a kill, a pause, a cut) loses the
// requests that reached its writer, and their answers: before, each waited out
// the request timeout (5 s) before it was sent again, although JetStream's
// election, which ends such a stall, often takes less (4–9 s, counted from the
// last heartbeat the followers heard, often before the send). JetStream announces
// each election ($JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.<stream>): a batch
// sent before that and still without an answer is given up then and sent again
// electedSettle later, to the new leader's writer, or, while that is starting,
// retried on its "no responders" every RetryBackoff. A resend is safe: the writer stores a
// producer's batch once (a resend of a stored batch is answered with its offsets,
// or as a duplicate), and a writer that lost its leadership cannot append.
//
// Until the cluster gives up on the old leader's routes (6–8 s after a pause or
// a cut: the nodes ping their routes every 2 s and drop one after 3 unanswered
// pings), its writer's queue subscription still takes some of the requests, and
// NATS hands each to a member picked at random. So a batch resent after an
// election, and any batch sent within electedStale after it, goes to the
// elected node's writer alone (see targetLocked), and each attempt waits
// electedAnswerWait, not the request timeout, in case that is not where the
// partition's writer runs. A healthy writer drains its answers before its
// leadership moves on purpose, so a planned move resends nothing.
//
// A producer whose client is on the cut-off node hears no advisory: the
// election (2.3–2.9 s after a cut) often comes before its client moves to
// another node (the cut-off node tells its clients to go 2.5 s after the cut,
// about 2.8 s in drills), and advisories are not replayed on the new
// connection. So when the client moves, each partition that had batches
// awaiting answers treats them as if its stream had just elected a leader (see
// clientMoved): it resends them hurried, having first asked JetStream where
// its stream's leader is now, so that they go to that node's writer.
const (
	// electedGrace: a batch sent this shortly before the advisory arrived may be
	// on its way to the new writer; it gets this long.
	electedGrace = 100 * time.Millisecond
	// electedSettle: a batch the election left without an answer is resent
	// this long after the advisory came. The new leader's node starts its
	// writer on the same advisory (its load takes milliseconds); a resend
	// before the writer subscribed finds no responder and waits RetryBackoff.
	electedSettle = 100 * time.Millisecond
	// electedAnswerWait bounds each attempt of a batch resent after an election,
	// or sent within electedStale after it.
	electedAnswerWait = time.Second
	// electedStale is how long after an election the old leader's writer may
	// still take requests on the queue subject, and batches go to the elected
	// node's writer instead: JetStream elects 4–9 s after a leader stops
	// answering, and the routes to it are dropped 6–8 s after.
	electedStale = 8 * time.Second
	// leaderLookupWait bounds the lookup of a partition's leader after the
	// client moved, and how long the partition's resends wait for it. The
	// stream's leader answers it; nobody does while the stream's leader is the
	// node the client left and no election has come yet, when the partition can
	// take nothing anyway.
	leaderLookupWait = 500 * time.Millisecond
	// electedWriterStart is how long after a node was named the partition's
	// leader its writer may still be starting: until then a batch sent to that
	// writer and answered by nobody is sent there again, unless that writer
	// answered before; after, the next go to the queue subject (see
	// partProducer.finish).
	electedWriterStart = 2 * time.Second
)

// Within electedStale after an election the batches go to the writer of the node
// the advisory named (the partition's WriterDirectSubject), not to the queue
// subject: the old leader's lingering queue subscription cannot take them, so a
// resend after an election waits for the new writer alone. Back on the queue
// subject are the batches sent after electedStale, after the named node's writer
// answered NOT_LEADER (it lost the leadership again), and those of a producer
// that saw no advisory. The leader a lookup after a move found (see
// leaderFound) is used the same way, for electedStale after it answered. The sender changes subjects only with no batch in flight:
// a writer takes each subscription's requests in order, not two subscriptions'
// requests in the order they were sent.

// leaderElected records that the partition's stream elected leader (a node's
// name, "" if unknown) at at, and wakes the sender to give up on the batches it
// left without an answer. It ends the wait for a lookup of the leader after a
// move (see clientMoved): the advisory says where the leader is now, and the
// lookup, sent before the election, is answered by nobody.
func (pp *partProducer) leaderElected(at time.Time, leader string) {
	pp.mu.Lock()
	pp.elected, pp.leader, pp.leaderAt, pp.leaderServed = at, leader, at, false
	looking := !pp.lookupUntil.IsZero()
	pp.lookupUntil = time.Time{}
	pp.mu.Unlock()
	if looking {
		pp.p.c.log.Debug("the partition's stream elected a leader while the producer looked it up after a move; sending to that node's writer",
			"topic", pp.topic, "partition", pp.partition, "node", leader)
	}
	pp.signal()
}

// targetLocked is the node whose writer batches sent at now go to directly, ""
// for the queue subject. Called with mu held.
func (pp *partProducer) targetLocked(now time.Time) string {
	if pp.leader == "" || now.Sub(pp.leaderAt) >= electedStale {
		return ""
	}
	return pp.leader
}

// giveUpAtLocked is when the unanswered b is given up and sent again although
// the request timeout has not passed (zero: not before the request timeout):
// after the stream elected a leader, or after electedAnswerWait for a batch
// being resent after an election or a move, or sent within electedStale after
// one. Called with mu held.
func (pp *partProducer) giveUpAtLocked(b *batch) time.Time {
	var at time.Time
	switch e := pp.elected; {
	case e.IsZero():
	case b.sentAt.Before(e):
		at = e.Add(electedSettle)
		if g := b.sentAt.Add(electedGrace); g.After(at) {
			at = g
		}
	case b.sentAt.Sub(e) < electedStale:
		at = b.sentAt.Add(electedAnswerWait)
	}
	if m := pp.moved; !m.IsZero() && !b.sentAt.Before(m) && b.sentAt.Sub(m) < electedStale {
		// Sent after a move, perhaps to the queue subject the old leader's
		// writer may still hold (see clientMoved).
		at = earliest(at, b.sentAt.Add(electedAnswerWait))
	}
	if b.hurried {
		at = earliest(at, b.sentAt.Add(electedAnswerWait))
	}
	return at
}

// giveUpLocked reports whether the unanswered b is to be given up at now (see
// giveUpAtLocked). Called with mu held.
func (pp *partProducer) giveUpLocked(b *batch, now time.Time) bool {
	at := pp.giveUpAtLocked(b)
	return !at.IsZero() && !now.Before(at)
}

// clientMoved records that the client moved to another node at at while the
// partition had batches awaiting answers, which the connection lost: they are
// resent as if the stream had just elected a leader (hurried, see lost), and
// every batch sent within electedStale after the move waits electedAnswerWait
// per attempt, as after an election. Before the resends, the lookup of the
// stream's leader begun at at (Producer.lookUpLeader) gets leaderLookupWait to
// find where they go: with nothing in flight the sender sends nothing
// meanwhile, so that all of them go to one subject.
func (pp *partProducer) clientMoved(at time.Time) {
	pp.mu.Lock()
	pp.moved, pp.lookupUntil = at, at.Add(leaderLookupWait)
	pp.mu.Unlock()
}

// lost fails b, which awaited an answer when the connection was lost, with err
// (retriable); b and the batches resent with it are hurried.
func (pp *partProducer) lost(b *batch, err error) {
	pp.mu.Lock()
	b.hurry = true
	pp.mu.Unlock()
	pp.finish(b, -1, err)
}

// leaderFound ends the lookup of the stream's leader begun at at: leader leads
// it ("" when the lookup found none). The batches sent for electedStale after go
// to that node's writer, unless a later move or an advisory since at said more.
func (pp *partProducer) leaderFound(at time.Time, leader string) {
	pp.mu.Lock()
	if pp.moved.Equal(at) {
		pp.lookupUntil = time.Time{}
		if leader != "" && !pp.elected.After(at) {
			pp.leader, pp.leaderAt, pp.leaderServed = leader, time.Now(), false
		}
	}
	pp.mu.Unlock()
	pp.signal()
}

// lookUpLeader asks JetStream, through the node the client moved to, which node
// leads pp's stream, for at most leaderLookupWait, and hands the answer to pp
// (leaderFound). The stream's leader answers. An identity that may not ask
// (produce rights alone do not cover a partition stream's info) is not asked
// again: its resends go to the queue subject.
func (p *Producer) lookUpLeader(pp *partProducer, at time.Time) {
	defer p.wg.Done()
	var leader string
	if !p.lookupDenied.Load() {
		ctx, cancel := context.WithTimeout(p.ctx, leaderLookupWait)
		var err error
		leader, err = p.c.streamLeader(ctx, semantics.StreamName(pp.topic, pp.partition))
		cancel()
		if errors.Is(err, errLookupDenied) {
			p.lookupDenied.Store(true)
		}
		if err != nil && p.ctx.Err() == nil {
			pp.p.c.log.Debug("could not look up the partition's leader after the client moved",
				"topic", pp.topic, "partition", pp.partition, "err", err)
		}
	}
	pp.leaderFound(at, leader)
}

// errLookupDenied is streamLeader's error when the server refuses the identity
// the question.
var errLookupDenied = errors.New("not authorized to read the partition stream's info")

// streamLeader returns the name of the node leading stream ("" when it has
// none), from the stream's info; errLookupDenied at once when the server
// refuses the identity the question.
func (c *Client) streamLeader(ctx context.Context, stream string) (string, error) {
	var s jetstream.Stream
	var err error
	if c.authz == nil {
		s, err = c.js.Stream(ctx, stream)
	} else {
		subject := semantics.Subject(semantics.JSStreamInfoPrefix, stream)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w := c.authz.watch(subject, cancel)
		defer c.authz.unwatch(subject, w)
		s, err = c.js.Stream(ctx, stream)
		if err != nil && w.isDenied() {
			return "", errLookupDenied
		}
	}
	if err != nil {
		return "", err
	}
	if ci := s.CachedInfo().Cluster; ci != nil {
		return ci.Leader, nil
	}
	return "", nil
}

// resendOnReconnect fails every batch awaiting an answer, as retriable, each time
// the connection comes back after a loss, so that their senders send them again
// at once. NATS keeps what is published while the client reconnects, but a
// request written just before the client noticed that its node had gone (a node
// stopping, a socket closed under load), or the answer to it, is lost with the
// connection: without this the batch waited out the request timeout. A batch that
// was stored after all is answered as a duplicate with its offsets (idempotence).
// The resends are hurried, and go where the partition's leader is now (see
// clientMoved).
func (p *Producer) resendOnReconnect(up chan nats.Status) {
	defer p.wg.Done()
	defer p.c.nc.RemoveStatusListener(up)
	for {
		select {
		case <-p.ctx.Done():
			return
		case _, ok := <-up:
			if !ok {
				return
			}
		}
		p.reqMu.Lock()
		lost := make([]*batch, 0, len(p.reqs))
		for id, b := range p.reqs {
			lost = append(lost, b)
			delete(p.reqs, id)
		}
		p.reqMu.Unlock()
		// Each partition that lost batches looks up its leader before it
		// resends them (see clientMoved).
		now := time.Now()
		moved := map[*partProducer]bool{}
		for _, b := range lost {
			if pp := b.part; !moved[pp] {
				moved[pp] = true
				pp.clientMoved(now)
				p.wg.Add(1)
				go p.lookUpLeader(pp, now)
			}
		}
		for _, b := range lost {
			b.part.lost(b, semantics.Errorf(semantics.ErrUnavailable,
				"partition %s: the connection to the node was lost while the batch awaited its answer", b.part.name))
		}
	}
}

// onLeaderElected receives JetStream's advisory that a stream elected a leader;
// for a partition of a topic the producer writes to, the partition's sender gives
// up on the batches the election left without an answer and sends them again.
func (p *Producer) onLeaderElected(m *nats.Msg) {
	stream := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	topic, part, ok := semantics.ParseStreamName(stream)
	if !ok {
		return
	}
	tp := (*p.topics.Load())[topic]
	if tp == nil {
		return
	}
	tp.mu.Lock()
	var pp *partProducer
	if part >= 0 && int(part) < len(tp.parts) {
		pp = tp.parts[part]
	}
	tp.mu.Unlock()
	if pp != nil {
		// The advisory names the leader by its server name, which is its qxd
		// node's name: where the partition's writer now runs.
		var adv struct {
			Leader string `json:"leader"`
		}
		_ = json.Unmarshal(m.Data, &adv)
		pp.leaderElected(time.Now(), adv.Leader)
	}
}
