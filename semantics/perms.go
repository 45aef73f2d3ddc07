package semantics

import (
	"slices"
	"strings"
)

// Permissions in qxd are granted per topic and per consumer group, and enforced by
// NATS: a node turns an identity's Grant into NATS subject permissions with
// Grant.Subjects, the one place that knows which subjects each qxd operation uses.
// docs/security.md lists the mapping.

// AllPattern is the pattern that matches every topic or every group.
const AllPattern = "*"

// Grant is what one identity may do. Each list holds patterns: an exact topic name
// (or group id), or AllPattern for all of them. Prefix patterns such as "orders-*"
// are not supported: a topic is one token of a NATS subject, and NATS permissions
// cannot match part of a token.
type Grant struct {
	// Produce: send records to the topics.
	Produce []string `json:"produce,omitempty"`
	// Consume: read records of the topics (assign, subscribe, seek, describe offsets).
	Consume []string `json:"consume,omitempty"`
	// Admin: create, delete, add partitions to, rebalance the topics. Admin on
	// AllPattern also manages bridges, which run with the node's own rights.
	Admin []string `json:"admin,omitempty"`
	// Groups: use the consumer groups (join, commit, fetch, seek, describe, delete).
	Groups []string `json:"groups,omitempty"`
	// Publish and Subscribe are plain NATS subjects (wildcards allowed) outside
	// qxd's own, for clients of bridges: the publishers an ingest bridge takes
	// records from, the subscribers of an egress bridge.
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
}

// Operation names a kind of right for AuthzSubject.
type Operation string

// The operations a Grant gives rights for.
const (
	OpProduce Operation = "produce"
	OpConsume Operation = "consume"
	OpAdmin   Operation = "admin"
	OpGroup   Operation = "group"
)

// ValidateTopicPattern checks one topic pattern of a Grant: AllPattern or a valid
// topic name.
func ValidateTopicPattern(p string) error {
	if p == AllPattern {
		return nil
	}
	if strings.Contains(p, "*") || strings.Contains(p, ">") {
		return Errorf(ErrInvalidConfig, "topic pattern %q: use an exact topic name or \"*\" for all topics; prefix patterns cannot be expressed as NATS permissions, so list each topic", p)
	}
	if err := ValidateTopicName(p); err != nil {
		return Errorf(ErrInvalidConfig, "topic pattern %q: %v", p, err)
	}
	return nil
}

// ValidateGroupPattern checks one group pattern of a Grant: AllPattern or a valid
// group id.
func ValidateGroupPattern(p string) error {
	if p == AllPattern {
		return nil
	}
	if strings.Contains(p, "*") {
		return Errorf(ErrInvalidConfig, "group pattern %q: use an exact group id or \"*\" for all groups; prefix patterns cannot be expressed as NATS permissions", p)
	}
	if err := ValidateGroupID(p); err != nil {
		return Errorf(ErrInvalidConfig, "group pattern %q: %v", p, err)
	}
	return nil
}

// Validate checks every pattern of g.
func (g Grant) Validate() error {
	for _, l := range [][]string{g.Produce, g.Consume, g.Admin} {
		for _, p := range l {
			if err := ValidateTopicPattern(p); err != nil {
				return err
			}
		}
	}
	for _, p := range g.Groups {
		if err := ValidateGroupPattern(p); err != nil {
			return err
		}
	}
	for _, l := range [][]string{g.Publish, g.Subscribe} {
		for _, s := range l {
			if err := ValidatePlainSubject(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// ValidatePlainSubject checks a plain NATS subject of a Grant: a valid subject
// (wildcards allowed) whose first token is literal and not one of the prefixes qxd,
// JetStream and NATS use themselves.
func ValidatePlainSubject(s string) error {
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" || strings.ContainsAny(t, " \t\r\n") || (len(t) > 1 && strings.ContainsAny(t, "*>")) || (t == ">" && i != len(toks)-1) {
			return Errorf(ErrInvalidConfig, "subject %q is not a valid NATS subject", s)
		}
	}
	switch first := toks[0]; {
	case first == "*" || first == ">":
		return Errorf(ErrInvalidConfig, "subject %q starts with a wildcard, which covers qxd's own subjects: start it with a literal token", s)
	case slices.Contains(reservedTokens, first) || strings.HasPrefix(first, inboxToken) || strings.HasPrefix(first, replyToken):
		return Errorf(ErrInvalidConfig, "subject %q is under %q, which qxd or NATS uses itself: grant topic rights instead", s, first)
	}
	return nil
}

// Allows reports whether g gives op on name (a topic, or a group for OpGroup).
func (g Grant) Allows(op Operation, name string) bool {
	var l []string
	switch op {
	case OpProduce:
		l = g.Produce
	case OpConsume:
		l = g.Consume
	case OpAdmin:
		l = g.Admin
	case OpGroup:
		l = g.Groups
	}
	return slices.Contains(l, AllPattern) || slices.Contains(l, name)
}

// ConsumesAll reports whether g consumes every topic. Otherwise its consume rights
// name partition streams one by one, and change when topics are created, deleted or
// given partitions.
func (g Grant) ConsumesAll() bool { return slices.Contains(g.Consume, AllPattern) }

// TopicPerms is what the subjects of consume rights depend on: a topic's
// partitions and its id (the key of its checkpoints).
type TopicPerms struct {
	Name       string
	ID         string
	Partitions int32
}

// SubjectPermissions are NATS subject permissions: subjects an identity may publish
// to and subscribe to; PublishDeny overrides PublishAllow.
type SubjectPermissions struct {
	PublishAllow   []string
	PublishDeny    []string
	SubscribeAllow []string
}

// internalStreams hold qxd's own state that only nodes read: group states,
// committed offsets (reached through the coordinator) and bridge definitions.
var internalStreams = []string{KVStream(GroupsBucket), KVStream(OffsetsBucket), KVStream(BridgesBucket)}

// Subjects maps g to NATS subject permissions for an identity whose replies come
// under inbox (see InboxPrefix). topics are the topics that exist: consume rights
// name each partition stream of each consumed topic (a stream name is one subject
// token, so it cannot be matched by a pattern), and must be recomputed when topics
// change.
func (g Grant) Subjects(inbox string, topics []TopicPerms) SubjectPermissions {
	var pub []string
	add := func(s ...string) { pub = append(pub, s...) }
	// Every identity: open the metadata buckets, list topics, see the cluster.
	add(Subject(JSStreamInfoPrefix, KVStream(TopicsBucket)), Subject(JSStreamInfoPrefix, KVStream(PartitionsBucket)),
		APITopicList, APIClusterInfo)
	add(APIClusterMetadata)

	meta := map[string]bool{} // topic patterns whose metadata may be read
	for _, l := range [][]string{g.Produce, g.Consume, g.Admin} {
		for _, p := range l {
			meta[p] = true
		}
	}
	for _, p := range sortedKeys(meta) {
		if p == AllPattern {
			add(Subject(JSDirectGetPrefix, KVStream(TopicsBucket), ">"), Subject(APITopicDescribe, "*"), Subject(APITopicVerify, "*"),
				Subject(APITopicReportDamage, "*"))
			continue
		}
		add(KVDirectGetSubject(TopicsBucket, EncodeTopic(p)), TopicAPISubject(APITopicDescribe, p), TopicAPISubject(APITopicVerify, p),
			TopicAPISubject(APITopicReportDamage, p))
	}
	if len(g.Produce) > 0 {
		// Transactions: as the Kafka listener, a right to produce to some topic.
		add(TxnAll)
	}
	for _, p := range g.Produce {
		if p == AllPattern {
			add(Subject(WriterPrefix, ">"), Subject(authzPrefix, string(OpProduce), "*"))
			continue
		}
		// The topic's writers: every partition's (WriterSubject) and every
		// partition's on one node (WriterDirectSubject), nothing longer.
		add(Subject(WriterPrefix, EncodeTopic(p), "*"), Subject(WriterPrefix, EncodeTopic(p), "*", "*"), AuthzSubject(OpProduce, p))
	}
	for _, p := range g.Consume {
		if p == AllPattern {
			add(LSOAll) // read-committed reads
			add(Subject(authzPrefix, string(OpConsume), "*"),
				Subject(JSStreamInfoPrefix, "*"), Subject(JSDirectGetPrefix, "*"), Subject(JSDirectGetPrefix, "*", ">"),
				Subject(JSStreamMsgGetPrefix, "*"),
				Subject(jsAPIPrefix, "CONSUMER.CREATE.*.>"), Subject(jsAPIPrefix, "CONSUMER.MSG.NEXT.*.*"),
				Subject(jsAPIPrefix, "CONSUMER.INFO.*.*"), Subject(jsAPIPrefix, "CONSUMER.DELETE.*.*"))
			continue
		}
		add(AuthzSubject(OpConsume, p), Subject(lsoPrefix, EncodeTopic(p), "*"))
	}
	if !g.ConsumesAll() {
		for _, t := range topics {
			if !slices.Contains(g.Consume, t.Name) {
				continue
			}
			if t.ID != "" {
				add(KVDirectGetSubject(PartitionsBucket, Subject(t.ID, "*")))
			}
			for p := int32(0); p < t.Partitions; p++ {
				add(PartitionReadSubjects(t.Name, p)...)
			}
		}
	}
	for _, p := range g.Admin {
		if p == AllPattern {
			add(APIAllSubjects, Subject(authzPrefix, string(OpAdmin), "*"))
			continue
		}
		add(Subject(APITopicPrefix, "*", EncodeTopic(p)), AuthzSubject(OpAdmin, p))
	}
	if len(g.Groups) > 0 {
		add(GroupList)
	}
	for _, p := range g.Groups {
		if p == AllPattern {
			add(GroupAll, Subject(authzPrefix, string(OpGroup), "*"))
			continue
		}
		add(Subject(groupPrefix, "*", EncodeGroupID(p)), AuthzSubject(OpGroup, p))
	}

	add(g.Publish...)

	deny := []string{
		// Records enter partitions only through their writers, and metadata only
		// through the nodes.
		PartitionSubjects, Subject(kvToken, ">"),
		Subject(jsAPIPrefix, "STREAM.CREATE.>"), Subject(jsAPIPrefix, "STREAM.UPDATE.>"), Subject(jsAPIPrefix, "STREAM.DELETE.>"),
		Subject(JSStreamPurgePrefix, ">"), Subject(jsAPIPrefix, "STREAM.MSG.DELETE.>"), Subject(jsAPIPrefix, "STREAM.SNAPSHOT.>"),
		Subject(jsAPIPrefix, "STREAM.RESTORE.>"), Subject(jsAPIPrefix, "STREAM.LEADER.>"), Subject(jsAPIPrefix, "STREAM.PEER.>"),
		Subject(jsAPIPrefix, "META.>"), Subject(jsAPIPrefix, "SERVER.>"), Subject(jsAPIPrefix, "ACCOUNT.>"), Subject(sysToken, ">"),
	}
	for _, s := range internalStreams {
		deny = append(deny, Subject(JSDirectGetPrefix, s), Subject(JSDirectGetPrefix, s, ">"), Subject(JSStreamMsgGetPrefix, s),
			Subject(jsAPIPrefix, "CONSUMER.CREATE", s, ">"))
	}
	sub := []string{Subject(inbox, ">")}
	if len(g.Groups) > 0 {
		// A member resends its group requests when a coordinator starts.
		sub = append(sub, GroupCoordinatorStarted)
	}
	return SubjectPermissions{PublishAllow: pub, PublishDeny: deny, SubscribeAllow: append(sub, g.Subscribe...)}
}

// PartitionReadSubjects are the JetStream API subjects a consumer of partition p of
// topic uses: stream info (offsets), direct and leader message reads (offset
// lookups), and an ordered consumer's create, next, info and delete.
func PartitionReadSubjects(topic string, p int32) []string {
	s := StreamName(topic, p)
	return []string{
		Subject(JSStreamInfoPrefix, s),
		Subject(JSDirectGetPrefix, s),
		Subject(JSStreamMsgGetPrefix, s),
		Subject(jsAPIPrefix, "CONSUMER.CREATE", s, ">"),
		Subject(jsAPIPrefix, "CONSUMER.MSG.NEXT", s, "*"),
		Subject(jsAPIPrefix, "CONSUMER.INFO", s, "*"),
		Subject(jsAPIPrefix, "CONSUMER.DELETE", s, "*"),
	}
}

// TopicFromSubject finds the topic a denied subject was about, for error messages:
// writer, admin, authz and partition-stream subjects. ok is false for others.
func TopicFromSubject(subject string) (topic string, ok bool) {
	toks := strings.Split(subject, ".")
	under := func(prefix string) bool { _, ok := CutSubject(subject, prefix); return ok }
	switch {
	case under(WriterPrefix) && len(toks) >= 3:
		return DecodeTopic(toks[2]), true
	case under(APITopicPrefix) && len(toks) == 5:
		return DecodeTopic(toks[4]), true
	case under(authzPrefix) && len(toks) == 4 && toks[2] != string(OpGroup):
		return DecodeTopic(toks[3]), true
	case under(Subject(JSDirectGetPrefix, KVStream(TopicsBucket))):
		return DecodeTopic(toks[len(toks)-1]), true
	case under(jsAPIPrefix):
		for _, tok := range toks[2:] {
			if t, _, ok := ParseStreamName(tok); ok {
				return t, true
			}
		}
	}
	return "", false
}

// GroupFromSubject finds the group a denied group subject was about.
func GroupFromSubject(subject string) (group string, ok bool) {
	_, tok := SplitGroupSubject(subject)
	if tok == "" {
		var under bool
		if tok, under = CutSubject(subject, Subject(authzPrefix, string(OpGroup))); !under {
			return "", false
		}
	}
	g, err := DecodeGroupID(tok)
	return g, err == nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
