package semantics

import (
	"crypto/sha256"
	"encoding/hex"
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
	case first == "qxd" || first == "$JS" || first == "$KV" || first == "$O" || first == "$SYS" || first == "$NRG" ||
		strings.HasPrefix(first, "_INBOX") || strings.HasPrefix(first, "_R_"):
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

// AuthzSubject is a subject nobody subscribes to, which an identity may publish to
// exactly when it has right op on name (a topic, or a group for OpGroup). The SDK
// publishes to it to learn, before doing anything, whether an operation is allowed.
func AuthzSubject(op Operation, name string) string {
	if op == OpGroup {
		return authzPrefix + string(op) + "." + EncodeGroupID(name)
	}
	return authzPrefix + string(op) + "." + EncodeTopic(name)
}

const authzPrefix = "qxd.authz."

// TopicAPISubject is the subject of an admin operation on one topic: op (one of
// APITopicCreate, APITopicDelete, APITopicAddPartitions, APITopicDescribe,
// APITopicRebalance) followed by the encoded topic, so that permissions can name
// the topic. The node checks that the request body names the same topic.
func TopicAPISubject(op, topic string) string { return op + "." + EncodeTopic(topic) }

// SplitTopicAPISubject splits a subject made by TopicAPISubject into op and the
// encoded topic. Other subjects are returned unchanged with an empty token.
func SplitTopicAPISubject(subject string) (op, token string) {
	rest, ok := strings.CutPrefix(subject, apiTopicPrefix)
	if !ok {
		return subject, ""
	}
	verb, tok, found := strings.Cut(rest, ".")
	if !found {
		return subject, ""
	}
	return apiTopicPrefix + verb, tok
}

const apiTopicPrefix = "qxd.api.topic."

// GroupSubject is the subject of a group coordinator request about one group: op
// (GroupJoin, GroupCommit, …) followed by the encoded group id, so that
// permissions can name the group. GroupList has no group.
func GroupSubject(op, group string) string { return op + "." + EncodeGroupID(group) }

// SplitGroupSubject splits a subject made by GroupSubject into op and the encoded
// group. Other subjects are returned unchanged with an empty token.
func SplitGroupSubject(subject string) (op, token string) {
	rest, ok := strings.CutPrefix(subject, groupPrefix)
	if !ok {
		return subject, ""
	}
	verb, tok, found := strings.Cut(rest, ".")
	if !found {
		return subject, ""
	}
	return groupPrefix + verb, tok
}

const groupPrefix = "qxd.grp."

// InboxPrefix is the reply-subject prefix of an identity: the SDK sets it on its
// connection, and an identity may subscribe only under its own prefix, so that no
// one reads replies (records, offsets) sent to another. kind is "u" for a user
// name, "k" for an nkey or JWT user (id is the public key) and "t" for a token (id
// is the token; only its hash appears in the prefix).
func InboxPrefix(kind, id string) string {
	switch kind {
	case "t":
		sum := sha256.Sum256([]byte(id))
		id = hex.EncodeToString(sum[:12])
	case "u":
		id = EncodeGroupID(id)
	}
	return "_INBOX_" + kind + "_" + id
}

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

const jsAPI = "$JS.API."

// internalStreams hold qxd's own state that only nodes read: group states,
// committed offsets (reached through the coordinator) and bridge definitions.
var internalStreams = []string{"KV_" + GroupsBucket, "KV_" + OffsetsBucket, "KV_" + BridgesBucket}

// Subjects maps g to NATS subject permissions for an identity whose replies come
// under inbox (see InboxPrefix). topics are the topics that exist: consume rights
// name each partition stream of each consumed topic (a stream name is one subject
// token, so it cannot be matched by a pattern), and must be recomputed when topics
// change.
func (g Grant) Subjects(inbox string, topics []TopicPerms) SubjectPermissions {
	var pub []string
	add := func(s ...string) { pub = append(pub, s...) }
	// Every identity: open the metadata buckets, list topics, see the cluster.
	add(jsAPI+"STREAM.INFO.KV_"+TopicsBucket, jsAPI+"STREAM.INFO.KV_"+PartitionsBucket,
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
			add(jsAPI+"DIRECT.GET.KV_"+TopicsBucket+".>", APITopicDescribe+".*")
			continue
		}
		add(jsAPI+"DIRECT.GET.KV_"+TopicsBucket+".$KV."+TopicsBucket+"."+EncodeTopic(p), TopicAPISubject(APITopicDescribe, p))
	}
	for _, p := range g.Produce {
		if p == AllPattern {
			add(writerPrefix+">", authzPrefix+string(OpProduce)+".*")
			continue
		}
		add(writerPrefix+EncodeTopic(p)+".*", AuthzSubject(OpProduce, p))
	}
	for _, p := range g.Consume {
		if p == AllPattern {
			add(authzPrefix+string(OpConsume)+".*",
				jsAPI+"STREAM.INFO.*", jsAPI+"DIRECT.GET.*", jsAPI+"DIRECT.GET.*.>", jsAPI+"STREAM.MSG.GET.*",
				jsAPI+"CONSUMER.CREATE.*.>", jsAPI+"CONSUMER.MSG.NEXT.*.*", jsAPI+"CONSUMER.INFO.*.*",
				jsAPI+"CONSUMER.DELETE.*.*")
			continue
		}
		add(AuthzSubject(OpConsume, p))
	}
	if !g.ConsumesAll() {
		for _, t := range topics {
			if !slices.Contains(g.Consume, t.Name) {
				continue
			}
			if t.ID != "" {
				add(jsAPI + "DIRECT.GET.KV_" + PartitionsBucket + ".$KV." + PartitionsBucket + "." + t.ID + ".*")
			}
			for p := int32(0); p < t.Partitions; p++ {
				add(PartitionReadSubjects(t.Name, p)...)
			}
		}
	}
	for _, p := range g.Admin {
		if p == AllPattern {
			add(APIAllSubjects, authzPrefix+string(OpAdmin)+".*")
			continue
		}
		add(apiTopicPrefix+"*."+EncodeTopic(p), AuthzSubject(OpAdmin, p))
	}
	if len(g.Groups) > 0 {
		add(GroupList)
	}
	for _, p := range g.Groups {
		if p == AllPattern {
			add(GroupAll, authzPrefix+string(OpGroup)+".*")
			continue
		}
		add(groupPrefix+"*."+EncodeGroupID(p), AuthzSubject(OpGroup, p))
	}

	add(g.Publish...)

	deny := []string{
		// Records enter partitions only through their writers, and metadata only
		// through the nodes.
		dataPrefix + ">", "$KV.>",
		jsAPI + "STREAM.CREATE.>", jsAPI + "STREAM.UPDATE.>", jsAPI + "STREAM.DELETE.>",
		jsAPI + "STREAM.PURGE.>", jsAPI + "STREAM.MSG.DELETE.>", jsAPI + "STREAM.SNAPSHOT.>",
		jsAPI + "STREAM.RESTORE.>", jsAPI + "STREAM.LEADER.>", jsAPI + "STREAM.PEER.>",
		jsAPI + "META.>", jsAPI + "SERVER.>", jsAPI + "ACCOUNT.>", "$SYS.>",
	}
	for _, s := range internalStreams {
		deny = append(deny, jsAPI+"DIRECT.GET."+s, jsAPI+"DIRECT.GET."+s+".>", jsAPI+"STREAM.MSG.GET."+s,
			jsAPI+"CONSUMER.CREATE."+s+".>")
	}
	return SubjectPermissions{PublishAllow: pub, PublishDeny: deny, SubscribeAllow: append([]string{inbox + ".>"}, g.Subscribe...)}
}

// PartitionReadSubjects are the JetStream API subjects a consumer of partition p of
// topic uses: stream info (offsets), direct and leader message reads (offset
// lookups), and an ordered consumer's create, next, info and delete.
func PartitionReadSubjects(topic string, p int32) []string {
	s := StreamName(topic, p)
	return []string{
		jsAPI + "STREAM.INFO." + s,
		jsAPI + "DIRECT.GET." + s,
		jsAPI + "STREAM.MSG.GET." + s,
		jsAPI + "CONSUMER.CREATE." + s + ".>",
		jsAPI + "CONSUMER.MSG.NEXT." + s + ".*",
		jsAPI + "CONSUMER.INFO." + s + ".*",
		jsAPI + "CONSUMER.DELETE." + s + ".*",
	}
}

// TopicFromSubject finds the topic a denied subject was about, for error messages:
// writer, admin, authz and partition-stream subjects. ok is false for others.
func TopicFromSubject(subject string) (topic string, ok bool) {
	toks := strings.Split(subject, ".")
	switch {
	case strings.HasPrefix(subject, writerPrefix) && len(toks) >= 3:
		return DecodeTopic(toks[2]), true
	case strings.HasPrefix(subject, apiTopicPrefix) && len(toks) == 5:
		return DecodeTopic(toks[4]), true
	case strings.HasPrefix(subject, authzPrefix) && len(toks) == 4 && toks[2] != string(OpGroup):
		return DecodeTopic(toks[3]), true
	case strings.HasPrefix(subject, jsAPI+"DIRECT.GET.KV_"+TopicsBucket+"."):
		return DecodeTopic(toks[len(toks)-1]), true
	case strings.HasPrefix(subject, jsAPI):
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
	op, tok := SplitGroupSubject(subject)
	if tok == "" {
		if strings.HasPrefix(subject, authzPrefix+string(OpGroup)+".") {
			tok = strings.TrimPrefix(subject, authzPrefix+string(OpGroup)+".")
		} else {
			return "", false
		}
	}
	_ = op
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
