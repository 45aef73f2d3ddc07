package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// topicRecords gives the offsets store the current topic records, so that commits
// are tied to one incarnation of their topic.
//
// A commit checks its topic's record (offsets.QuickTopics) as the topics
// bucket's leader holds it, waiting topicLeaderPatience for it; when the leader
// does not answer in that time, it takes the ready record read last, if within
// topicRecordFor, else a replica's copy (getTopicQuick); the offsets store asks
// the leader again (Topic) before it refuses a commit. Read from the leader
// with leaderReadWait, a commit sent while a paused, killed or cut-off node led
// the bucket waited a second for it, until the bucket elected another leader
// (about 2 s), and a group committing every second stored a commit every two.
// Fetches and lists of commits read with Topic: a record behind the leader's
// could let a commit of an earlier incarnation through.
type topicRecords struct {
	topics topicStore
	log    *slog.Logger

	mu     sync.Mutex
	recent map[string]recentTopic
}

// recentTopic is a ready topic record and when it was read.
type recentTopic struct {
	meta semantics.TopicMeta
	at   time.Time
}

const (
	// topicLeaderPatience is how long a commit's check waits for the topics
	// bucket's leader before it takes a record read before.
	topicLeaderPatience = 250 * time.Millisecond
	// topicRecordFor is how long a commit's check takes a ready topic record
	// read before, while the topics bucket's leader does not answer.
	topicRecordFor = 5 * time.Second
)

var _ offsets.QuickTopics = (*topicRecords)(nil)

func newTopicRecords(topics topicStore, log *slog.Logger) *topicRecords {
	return &topicRecords{topics: topics, log: log, recent: map[string]recentTopic{}}
}

// Topic reads the record from the topics bucket's leader (getTopic).
func (t *topicRecords) Topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	return t.read(ctx, name, t.topics.getTopic)
}

// TopicQuick is the record a commit is checked against: the leader's, if it
// answers within topicLeaderPatience; else a ready one read within
// topicRecordFor; else a replica's.
func (t *topicRecords) TopicQuick(ctx context.Context, name string) (semantics.TopicMeta, error) {
	lctx, cancel := context.WithTimeout(ctx, topicLeaderPatience)
	meta, err := t.read(lctx, name, t.topics.getTopicLeader)
	cancel()
	if err == nil || errors.Is(err, semantics.ErrUnknownTopic) || ctx.Err() != nil {
		return meta, err
	}
	t.mu.Lock()
	r, ok := t.recent[name]
	t.mu.Unlock()
	if ok && time.Since(r.at) < topicRecordFor {
		return r.meta, nil
	}
	return t.read(ctx, name, t.topics.getTopicQuick)
}

// read reads name's record with get, keeps it when it is ready, and logs a slow
// read (debug).
func (t *topicRecords) read(ctx context.Context, name string, get func(context.Context, string) (semantics.TopicMeta, error)) (semantics.TopicMeta, error) {
	began := time.Now()
	meta, err := get(ctx, name)
	if took := time.Since(began); took >= slowGroupRequest {
		t.log.Debug("topic record read slowly for the offsets store", "topic", name, "took", took, "err", err)
	}
	switch {
	case err == nil && meta.State == semantics.TopicReady:
		t.mu.Lock()
		t.recent[name] = recentTopic{meta, began}
		t.mu.Unlock()
	case err == nil, errors.Is(err, semantics.ErrUnknownTopic):
		t.mu.Lock()
		delete(t.recent, name)
		t.mu.Unlock()
	}
	return meta, err
}
