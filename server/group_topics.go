package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// topicRecords gives the offsets store the current topic records, so that commits
// are tied to one incarnation of their topic.
//
// A commit checks its topic's record (offsets.QuickTopics): it takes a ready
// record read within topicRecordFor, else reads one from any replica
// (getTopicQuick), and only a refusal is confirmed with the topics bucket's
// leader. Read from the leader each time, a commit sent while a paused, killed
// or cut-off node led the bucket waited leaderReadWait, until the bucket
// elected another leader (about 2 s), and a group committing every second
// stored a commit every two; and a replica's direct get can be sent to the
// paused node too (partition.DirectAttempt each time). Fetches and lists of
// commits read the leader's record (Topic): a copy behind it could let a
// commit of an earlier incarnation through.
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

// topicRecordFor is how long a commit takes a ready topic record read before.
const topicRecordFor = 5 * time.Second

var _ offsets.QuickTopics = (*topicRecords)(nil)

func newTopicRecords(topics topicStore, log *slog.Logger) *topicRecords {
	return &topicRecords{topics: topics, log: log, recent: map[string]recentTopic{}}
}

// Topic reads the record from the topics bucket's leader (getTopic).
func (t *topicRecords) Topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	return t.read(ctx, name, t.topics.getTopic)
}

// TopicQuick is the record a commit is checked against: a ready one read within
// topicRecordFor, else one read from any replica.
func (t *topicRecords) TopicQuick(ctx context.Context, name string) (semantics.TopicMeta, error) {
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
	t.mu.Lock()
	if err == nil && meta.State == semantics.TopicReady {
		t.recent[name] = recentTopic{meta, began}
	} else {
		delete(t.recent, name)
	}
	t.mu.Unlock()
	return meta, err
}
