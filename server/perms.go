package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/semantics"
)

// permRegistry gives each client the NATS permissions of its grant
// (semantics.Grant.Subjects) and keeps them current: consume rights name every
// partition stream of a topic, so when a topic is created, deleted or given
// partitions, the clients that consume it get new permissions at once, as a
// configuration reload of nats-server does.
type permRegistry struct {
	log *slog.Logger
	ns  *natsserver.Server

	mu        sync.Mutex
	topics    map[string]semantics.TopicPerms
	clients   map[uint64]*liveClient
	lastPrune int

	cancel context.CancelFunc
	done   chan struct{}
}

type liveClient struct {
	c     natsserver.ClientAuthentication
	id    identity
	added time.Time
}

func newPermRegistry(log *slog.Logger) *permRegistry {
	return &permRegistry{log: log, topics: map[string]semantics.TopicPerms{}, clients: map[uint64]*liveClient{}}
}

// permissions converts id's grant for the embedded server.
func (r *permRegistry) permissionsLocked(id identity) *natsserver.Permissions {
	var topics []semantics.TopicPerms
	if !id.grant.ConsumesAll() {
		for _, name := range id.grant.Consume {
			if t, ok := r.topics[name]; ok {
				topics = append(topics, t)
			}
		}
	}
	sp := id.grant.Subjects(id.inbox, topics)
	return &natsserver.Permissions{
		Publish:   &natsserver.SubjectPermission{Allow: sp.PublishAllow, Deny: sp.PublishDeny},
		Subscribe: &natsserver.SubjectPermission{Allow: sp.SubscribeAllow},
	}
}

// register gives client c the permissions of id, and remembers it if they depend
// on the topics.
func (r *permRegistry) register(c natsserver.ClientAuthentication, id identity) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.RegisterUser(&natsserver.User{Username: id.name, Permissions: r.permissionsLocked(id), ConnectionDeadline: id.deadline})
	if len(id.grant.Consume) == 0 || id.grant.ConsumesAll() {
		return
	}
	r.clients[c.GetID()] = &liveClient{c: c, id: id, added: time.Now()}
	if len(r.clients) > 2*r.lastPrune+64 {
		r.pruneLocked()
	}
}

// pruneLocked forgets clients that have disconnected.
func (r *permRegistry) pruneLocked() {
	if r.ns == nil {
		return
	}
	for cid, lc := range r.clients {
		// A client still connecting may not be listed by the server yet.
		if time.Since(lc.added) > 10*time.Second && r.ns.GetClient(cid) == nil {
			delete(r.clients, cid)
		}
	}
	r.lastPrune = len(r.clients)
}

// setTopic records a topic as it is now (nil: deleted) and updates the clients that
// consume it.
func (r *permRegistry) setTopic(name string, t *semantics.TopicPerms) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.topics[name]
	switch {
	case t == nil && !had:
		return
	case t == nil:
		delete(r.topics, name)
	case had && old == *t:
		return
	default:
		r.topics[name] = *t
	}
	r.pruneLocked()
	n := 0
	for _, lc := range r.clients {
		if !slices.Contains(lc.id.grant.Consume, name) {
			continue
		}
		lc.c.RegisterUser(&natsserver.User{Username: lc.id.name, Permissions: r.permissionsLocked(lc.id), ConnectionDeadline: lc.id.deadline})
		n++
	}
	if n > 0 {
		r.log.Debug("client permissions updated", "topic", name, "clients", n)
	}
}

// watch follows the topics bucket until stop; it returns once the topics that exist
// now are loaded (a watch that goes quiet first is replaced: see kvscan.Follow), or
// startCtx ends.
func (r *permRegistry) watch(startCtx context.Context, kv jetstream.KeyValue) error {
	w, stopWatch, err := kvscan.Follow(startCtx, kv, r.apply)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		defer stopWatch()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					r.apply(e)
				}
			}
		}
	}()
	return nil
}

// apply records one entry of the topics bucket.
func (r *permRegistry) apply(e jetstream.KeyValueEntry) {
	name := semantics.DecodeTopic(e.Key())
	if e.Operation() != jetstream.KeyValuePut {
		r.setTopic(name, nil)
		return
	}
	var t semantics.TopicMeta
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		r.log.Warn("topic record unreadable; permissions not updated", "topic", name, "err", err)
		return
	}
	r.setTopic(t.Name, &semantics.TopicPerms{Name: t.Name, ID: t.ID, Partitions: t.Config.Partitions})
}

func (r *permRegistry) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

// topicSubject returns the operation subject of an admin request. A request sent on
// a per-topic subject (semantics.TopicAPISubject) must name that topic in its body:
// permissions were checked against the subject.
func topicSubject(m *nats.Msg) (string, error) {
	op, tok := semantics.SplitTopicAPISubject(m.Subject)
	if tok == "" {
		return m.Subject, nil
	}
	var named struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(m.Data, &named)
	if semantics.EncodeTopic(named.Name) != tok {
		return op, semantics.Errorf(semantics.ErrInvalidRequest,
			"request on %s names topic %q: a per-topic request must name the topic of its subject", m.Subject, named.Name)
	}
	return op, nil
}
