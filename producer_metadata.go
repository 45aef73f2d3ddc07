// The producer's metadata loads: reading the record of a topic the producer has not
// used yet, in the background, with the records produced meanwhile parked until it
// ends.

package qxd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// topicLoad reads one topic's record for the producer, retrying while no node
// answers, for at most the delivery timeout.
type topicLoad struct {
	name string
	done chan struct{} // closed when the load ended; then tp or err is set
	tp   *topicProducer
	err  error
	// answered is set once a node answered that the topic is being created: the
	// metadata is coming, so Produce waits for it (see topicCreatingWait).
	answered atomic.Bool
	// slow is set once a record waited the request timeout for the load: later
	// records park at once instead of waiting again.
	slow atomic.Bool

	mu     sync.Mutex
	ended  bool
	parked []pendingRecord // accepted while the load was slow; buffer reserved
}

// slowLoad is topic's answer when a topic's load took longer than the request
// timeout: Produce parks the record with the load.
type slowLoad struct{ l *topicLoad }

func (e *slowLoad) Error() string { return fmt.Sprintf("topic %q: metadata still loading", e.l.name) }

// startLoad returns name's load in progress, or starts one.
func (p *Producer) startLoad(name string) (*topicLoad, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil, p.closedErr()
	}
	if tp := (*p.topics.Load())[name]; tp != nil {
		l := &topicLoad{name: name, done: make(chan struct{}), tp: tp, ended: true}
		close(l.done)
		return l, nil
	}
	if l := p.loads[name]; l != nil {
		return l, nil
	}
	l := &topicLoad{name: name, done: make(chan struct{})}
	p.loads[name] = l
	p.wg.Add(1)
	go p.load(l)
	return l, nil
}

// metadataRetry is the pause between reads of a topic's record while no node
// answers.
const metadataRetry = 100 * time.Millisecond

// load reads l's topic record until it has it, a node gives a final answer (the
// topic does not exist, the identity may not produce to it), the delivery timeout
// passes or the producer closes; then it ends l and hands the parked records on.
func (p *Producer) load(l *topicLoad) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.deliveryTimeout)
	defer cancel()
	var meta semantics.TopicMeta
	var err error
	for {
		err = p.c.authorizeTopic(ctx, semantics.OpProduce, l.name)
		if err == nil {
			meta, err = p.c.topicAnswered(ctx, l.name, func() { l.answered.Store(true) })
		}
		// A topic still being created after topic's wait for it is reported, not
		// waited for again.
		if err == nil || ctx.Err() != nil || !semantics.IsRetriable(err) || errors.Is(err, semantics.ErrTopicNotReady) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(metadataRetry):
		}
	}
	switch {
	case err == nil:
		l.tp = p.newTopicProducer(meta)
	case p.ctx.Err() != nil:
		l.err = p.closedErr()
	case ctx.Err() != nil:
		l.err = fmt.Errorf("%w: not sent: no metadata for topic %q within the delivery timeout %v (last error: %v)",
			ErrRecordTimeout, l.name, p.cfg.deliveryTimeout, err)
	default:
		l.err = err
	}
	// The parked records go first, in the order they came, and the topic is
	// published for other records only after them: a record produced after a
	// parked one never overtakes it.
	for {
		l.mu.Lock()
		parked := l.parked
		l.parked = nil
		if len(parked) == 0 {
			l.ended = true
			l.mu.Unlock()
			break
		}
		l.mu.Unlock()
		for _, pr := range parked {
			p.unpark(l, pr)
		}
	}
	if l.tp != nil {
		p.publishTopic(l.tp)
	}
	p.mu.Lock()
	delete(p.loads, l.name)
	p.mu.Unlock()
	close(l.done)
}

// park keeps pr until l ends, or hands it on at once if l has ended.
func (l *topicLoad) park(p *Producer, pr pendingRecord) {
	l.mu.Lock()
	if !l.ended {
		l.parked = append(l.parked, pr)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	p.unpark(l, pr)
}

// unpark sends a parked record to its partition, or fails it with the load's error.
func (p *Producer) unpark(l *topicLoad, pr pendingRecord) {
	err := l.err
	var pp *partProducer
	if err == nil {
		pp, err = p.partitionFor(l.tp, pr.r, pr.size)
	}
	if err == nil {
		if err = p.waitQueue(p.ctx, pp); errors.Is(err, context.Canceled) {
			err = p.closedErr()
		}
	}
	if err != nil {
		pr.r.Offset = -1
		p.release(pr.size, 1)
		if pr.cb != nil {
			pr.cb(pr.r, err)
		}
		return
	}
	pr.r.Partition = pp.partition
	pp.append(pr)
}
