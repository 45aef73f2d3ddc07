package semantics

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// This file names every NATS subject and subject prefix qxd serves, calls or
// reserves. docs/architecture.md's subject table is its twin
// (TestSubjectTableMatchesDocs fails when the two differ).
//
// A prefix is a subject's leading tokens, without the trailing dot; Subject appends
// the tokens that scope it (a topic, a partition, a group, a node) and CutSubject
// takes them off again.

// Subject is the subject prefix scoped by tokens, joined with dots:
// Subject(APITopicCreate, "orders=eu") is "qxd.api.topic.create.orders=eu".
func Subject(prefix string, tokens ...string) string {
	n := len(prefix)
	for _, t := range tokens {
		n += 1 + len(t)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(prefix)
	for _, t := range tokens {
		b.WriteByte('.')
		b.WriteString(t)
	}
	return b.String()
}

// CutSubject returns the tokens of subject after prefix (joined with dots), and
// whether subject is under prefix at all.
func CutSubject(subject, prefix string) (rest string, ok bool) {
	rest, ok = strings.CutPrefix(subject, prefix)
	if !ok || !strings.HasPrefix(rest, ".") {
		return "", false
	}
	return rest[1:], true
}

// Admin API: request/reply, JSON bodies. Any node answers; requests are
// load-balanced over the queue group APIQueueGroup. The per-topic operations are
// scoped by the encoded topic (TopicAPISubject), so that permissions can name it.
const (
	APIPrefix             = "qxd.api"
	APIAllSubjects        = "qxd.api.>"
	APIQueueGroup         = "qxd-api"
	APITopicPrefix        = "qxd.api.topic"
	APITopicCreate        = "qxd.api.topic.create"
	APITopicDelete        = "qxd.api.topic.delete"
	APITopicAddPartitions = "qxd.api.topic.add_partitions"
	APITopicDescribe      = "qxd.api.topic.describe"
	APITopicRebalance     = "qxd.api.topic.rebalance"
	APITopicAlterConfig   = "qxd.api.topic.alter_config"
	APITopicDeleteRecords = "qxd.api.topic.delete_records"
	APITopicList          = "qxd.api.topic.list"
	APIBridgePrefix       = "qxd.api.bridge"
	APIBridgeCreate       = "qxd.api.bridge.create"
	APIBridgeDelete       = "qxd.api.bridge.delete"
	APIBridgeList         = "qxd.api.bridge.list"
	APIBridgeDescribe     = "qxd.api.bridge.describe"
	// APIClusterInfo asks any node for the cluster's health: its nodes, the meta
	// leader, and the partitions that are under-replicated. The request body is
	// empty ({}); the answer is a ClusterInfo.
	APIClusterInfo = "qxd.api.cluster.info"
	// APIClusterMetadata asks any node for a one-shot view of the cluster's
	// metadata, as kcat -L shows Kafka's: the nodes with their addresses, and per
	// topic and partition the leader, the replicas and the in-sync replicas. The
	// request is a MetadataRequest, the answer a Metadata.
	APIClusterMetadata = "qxd.api.cluster.metadata"
)

// Group coordinator: request/reply, JSON bodies. Only the node that coordinates
// groups serves them. Every request but GroupList is scoped by the encoded group id
// (GroupSubject).
const (
	groupPrefix    = "qxd.grp"
	GroupAll       = "qxd.grp.>"
	GroupJoin      = "qxd.grp.join"
	GroupSync      = "qxd.grp.sync"
	GroupHeartbeat = "qxd.grp.heartbeat"
	GroupLeave     = "qxd.grp.leave"
	GroupCommit    = "qxd.grp.commit"
	GroupFetch     = "qxd.grp.fetch"
	GroupDescribe  = "qxd.grp.describe"
	GroupDelete    = "qxd.grp.delete"
	GroupReset     = "qxd.grp.reset"
	GroupList      = "qxd.grp.list"
)

// GroupCoordinatorStarted is published (empty body) by a node each time a group
// coordinator starts on it, once it serves the group subjects. A client waiting
// for an answer to a group request sent before then (to a coordinator on a node
// paused or cut off) sends it again at once instead of waiting out its attempt.
// Outside GroupAll, so that a client may listen to it without serving groups.
const GroupCoordinatorStarted = "qxd.grpcoord.started"

// Transaction coordinator: request/reply, JSON bodies (TxnRequest, TxnResponse).
// Only the node that coordinates transactions serves them. Every request but
// TxnList is scoped by the encoded transactional id (TxnSubject).
const (
	txnPrefix        = "qxd.txn"
	TxnAll           = "qxd.txn.>"
	TxnInit          = "qxd.txn.init"
	TxnAddPartitions = "qxd.txn.add_partitions"
	TxnAddGroup      = "qxd.txn.add_group"
	TxnCommitOffsets = "qxd.txn.commit_offsets"
	TxnEnd           = "qxd.txn.end"
	TxnDescribe      = "qxd.txn.describe"
	TxnList          = "qxd.txn.list"
)

// Last stable offsets: a read-committed reader asks for partition p's last
// stable offset and aborted transactions on lsoPrefix.<topic>.<p>
// (LSOSubject; request/reply, JSON StableRequest and StableReply). The
// partition's writer answers; while none runs (between leaders) the request finds
// no responders. LSOAll covers every partition's, for permissions.
const (
	lsoPrefix = "qxd.lso"
	LSOAll    = "qxd.lso.>"
)

// Partition writers: a producer sends a batch to the writer of its partition,
// WriterPrefix.<topic>.<p> (WriterSubject), or, to reach the writer on one node,
// WriterPrefix.<topic>.<p>.<node> (WriterDirectSubject).
const WriterPrefix = "qxd.w"

// Partition data: what partition streams store, under dataPrefix.<topic>.<p>.
const (
	dataPrefix = "qxd.t"
	// PartitionSubjects matches the subjects of every partition stream, to filter
	// JetStream's stream list to qxd's partitions.
	PartitionSubjects = "qxd.t.>"
)

// Transaction markers: the transaction coordinator asks the writer of a partition to
// end a producer's transaction under markerPrefix.<topic>.<p> (MarkerSubject). Only
// the nodes' own connections may publish there.
const markerPrefix = "qxd.internal.marker"

// Authorization probes: subjects nobody subscribes to (AuthzSubject).
const authzPrefix = "qxd.authz"

// Nodes. NodeInfoSubject is the subject every node answers (not as a queue group)
// with its BrokerInfo, so that one node can gather the others' addresses; under
// nodePrefix each node takes requests addressed to it alone (HandOffSubject).
// KafkaBrokersSubject is answered by every node with a Kafka listener (not as a
// queue group) with its name and advertised Kafka address; KafkaEpochsSubject by
// every such node with the leader epochs it knows of the partition streams asked;
// KafkaLeadsSubject by every such node that leads some of the partition streams
// asked, with their RAFT terms.
const (
	NodeInfoSubject     = "qxd.node.info"
	nodePrefix          = "qxd.internal.node"
	KafkaBrokersSubject = "qxd.internal.kafka.brokers"
	KafkaEpochsSubject  = "qxd.internal.kafka.epochs"
	KafkaLeadsSubject   = "qxd.internal.kafka.leads"
)

// Bridges: the runner of a bridge answers status requests under bridgeStatusPrefix
// (BridgeStatusSubject).
const bridgeStatusPrefix = "qxd.bridge.status"

// JetStream API subjects qxd calls itself, each scoped by a stream name, and the
// subjects of JetStream's KV buckets. jsAPIPrefix starts the ones permissions grant
// or deny.
const (
	jsAPIPrefix                  = "$JS.API"
	JSStreamInfoPrefix           = "$JS.API.STREAM.INFO"
	JSDirectGetPrefix            = "$JS.API.DIRECT.GET"
	JSStreamMsgGetPrefix         = "$JS.API.STREAM.MSG.GET"
	JSStreamPurgePrefix          = "$JS.API.STREAM.PURGE"
	JSStreamLeaderStepDownPrefix = "$JS.API.STREAM.LEADER.STEPDOWN"
	JSStreamPeerRemovePrefix     = "$JS.API.STREAM.PEER.REMOVE"
	// JetStream's advisories qxd's metrics count, each scoped by a stream name
	// (consumer advisories also by the consumer's).
	JSAdvisoryStreamLeaderPrefix   = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED"
	JSAdvisoryStreamQuorumPrefix   = "$JS.EVENT.ADVISORY.STREAM.QUORUM_LOST"
	JSAdvisoryConsumerLeaderPrefix = "$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED"
	JSAdvisoryConsumerQuorumPrefix = "$JS.EVENT.ADVISORY.CONSUMER.QUORUM_LOST"
	// kvStreamPrefix starts the name of the stream behind a KV bucket.
	kvStreamPrefix = "KV_"
)

// Reserved: the first tokens of subjects that qxd, JetStream and NATS use
// themselves. Neither a grant's plain subjects nor a bridge may use them.
const (
	qxdToken    = "qxd"
	jsToken     = "$JS"
	kvToken     = "$KV" // and the subjects of a KV bucket's keys, $KV.<bucket>.<key>
	objectToken = "$O"
	sysToken    = "$SYS"
	nrgToken    = "$NRG"
	// inboxToken and replyToken start reply subjects (a token that starts with
	// them is reserved too).
	inboxToken = "_INBOX"
	replyToken = "_R_"
)

// reservedTokens are the first tokens a grant's plain subject may not have;
// a first token starting with inboxToken or replyToken is reserved too.
var reservedTokens = []string{qxdToken, jsToken, kvToken, objectToken, sysToken, nrgToken}

// reservedSpaces are the subject spaces a bridge must not touch: qxd's own
// subjects (topic data, writers, APIs), JetStream's API and KV, the system account
// and reply inboxes. ReservedOverlap reports the first one a pattern overlaps.
var reservedSpaces = []string{
	Subject(qxdToken, ">"), Subject(jsToken, ">"), Subject(kvToken, ">"),
	Subject(sysToken, ">"), Subject(inboxToken, ">"),
}

// partitionSubject is the data subject of partition p of topic followed by tokens.
func partitionSubject(topic string, p int32, tokens ...string) string {
	return Subject(dataPrefix, append([]string{EncodeTopic(topic), strconv.Itoa(int(p))}, tokens...)...)
}

// StreamSubject is the subject filter of partition p's stream.
func StreamSubject(topic string, p int32) string { return partitionSubject(topic, p, ">") }

// BatchSubject is the subject a partition writer stores record batches on.
func BatchSubject(topic string, p int32) string { return partitionSubject(topic, p, "b") }

// CheckpointSubject is the subject a partition writer stores a record batch on when
// the batch's message also carries the writer's checkpoint (CheckpointHeader): a
// writer taking over finds the latest one with a last-by-subject read. Readers see
// an ordinary batch.
func CheckpointSubject(topic string, p int32) string { return partitionSubject(topic, p, "c") }

// ControlSubject is the subject a partition writer stores a transaction marker (a
// control batch) on: "commit" or "abort", so a writer taking over reads the abort
// markers alone to rebuild the aborted-transactions index. Readers read every
// subject of the stream and skip control batches.
func ControlSubject(topic string, p int32, commit bool) string {
	if commit {
		return partitionSubject(topic, p, "commit")
	}
	return partitionSubject(topic, p, "abort")
}

// MarkerSubject is the subject the partition writer of p takes transaction markers
// on (a MarkerRequest), from the transaction coordinator.
func MarkerSubject(topic string, p int32) string {
	return Subject(markerPrefix, EncodeTopic(topic), strconv.Itoa(int(p)))
}

// maxPlainKey is the longest key carried verbatim (base64) in a compacted record's
// subject; longer keys are carried as their SHA-256, keeping subjects short.
const maxPlainKey = 512

// KeySubject is the subject a record with key is stored on in a compacted topic, so
// that JetStream's MaxMsgsPerSubject of 1 keeps the latest record per key. The key is
// base64url-encoded ("k.<b64>"); an empty key is "e"; keys over 512 bytes are
// "h.<b64 of sha256(key)>".
func KeySubject(topic string, p int32, key []byte) string {
	switch {
	case len(key) == 0:
		return partitionSubject(topic, p, "e")
	case len(key) <= maxPlainKey:
		return partitionSubject(topic, p, "k", base64.RawURLEncoding.EncodeToString(key))
	default:
		sum := sha256.Sum256(key)
		return partitionSubject(topic, p, "h", base64.RawURLEncoding.EncodeToString(sum[:]))
	}
}

// LSOSubject is where the node leading partition p of topic answers its last
// stable offset and aborted transactions.
func LSOSubject(topic string, p int32) string {
	return Subject(lsoPrefix, EncodeTopic(topic), strconv.Itoa(int(p)))
}

// SplitLSOSubject returns the topic and partition of a subject made by
// LSOSubject; ok is false for any other subject.
func SplitLSOSubject(subject string) (topic string, p int32, ok bool) {
	rest, found := CutSubject(subject, lsoPrefix)
	if !found {
		return "", 0, false
	}
	tok, part, found := strings.Cut(rest, ".")
	n, err := strconv.ParseInt(part, 10, 32)
	if !found || err != nil || n < 0 || tok == "" {
		return "", 0, false
	}
	return DecodeTopic(tok), int32(n), true
}

// WriterSubject is the subject the partition writer of p listens on for produce
// requests.
func WriterSubject(topic string, p int32) string {
	return Subject(WriterPrefix, EncodeTopic(topic), strconv.Itoa(int(p)))
}

// WriterDirectSubject is where the partition writer of p on node alone takes
// produce requests (a plain subscription beside WriterSubject's queue
// subscription). A producer uses it after the partition's stream elected node its
// leader: until the cluster drops its routes to a paused or cut-off old leader,
// that leader's writer keeps its interest in WriterSubject, and NATS would hand
// it a share of the requests. The node's name is escaped as a group id is
// (EncodeGroupID), so that it is one token whatever it holds.
func WriterDirectSubject(topic string, p int32, node string) string {
	return Subject(WriterSubject(topic, p), EncodeGroupID(node))
}

// APITopicVerify reads back one partition's stored batches on its leader and checks
// them (VerifyPartitionRequest, VerifyPartitionResponse). It changes nothing and
// needs the right to describe the topic.
const APITopicVerify = "qxd.api.topic.verify"

// APITopicReportDamage takes a reader's report of a damaged stored batch
// (ReportDamageRequest, ReportDamageResponse): the node records it for describe
// and cluster info. It needs the right to describe the topic, as APITopicVerify
// does.
const APITopicReportDamage = "qxd.api.topic.report_damage"

// APITopicRepair rebuilds one partition's damaged copy on a node from its healthy
// replicas (RepairPartitionRequest, RepairPartitionResponse). It needs the right to
// administer the topic.
const APITopicRepair = "qxd.api.topic.repair"

// TopicAPISubject is the subject of an admin operation on one topic: op (one of
// APITopicCreate, APITopicDelete, APITopicAddPartitions, APITopicDescribe,
// APITopicRebalance, APITopicAlterConfig, APITopicDeleteRecords, APITopicVerify,
// APITopicReportDamage, APITopicRepair) followed by the
// encoded topic, so that permissions can name the topic. The node checks that the
// request body names the same topic.
func TopicAPISubject(op, topic string) string { return Subject(op, EncodeTopic(topic)) }

// SplitTopicAPISubject splits a subject made by TopicAPISubject into op and the
// encoded topic. Other subjects are returned unchanged with an empty token.
func SplitTopicAPISubject(subject string) (op, token string) {
	return splitScoped(subject, APITopicPrefix)
}

// GroupSubject is the subject of a group coordinator request about one group: op
// (GroupJoin, GroupCommit, …) followed by the encoded group id, so that
// permissions can name the group. GroupList has no group.
func GroupSubject(op, group string) string { return Subject(op, EncodeGroupID(group)) }

// TxnSubject is the subject of a transaction coordinator request: op (TxnInit,
// TxnEnd, …) followed by the encoded transactional id (EncodeGroupID's
// encoding), so that permissions can name it. TxnList has no id.
func TxnSubject(op, id string) string { return Subject(op, EncodeGroupID(id)) }

// SplitTxnSubject splits a subject made by TxnSubject into op and the encoded
// transactional id. Other subjects are returned unchanged with an empty token.
func SplitTxnSubject(subject string) (op, token string) {
	return splitScoped(subject, txnPrefix)
}

// SplitGroupSubject splits a subject made by GroupSubject into op and the encoded
// group. Other subjects are returned unchanged with an empty token.
func SplitGroupSubject(subject string) (op, token string) {
	return splitScoped(subject, groupPrefix)
}

// splitScoped splits prefix.<verb>.<token> into prefix.<verb> and token; other
// subjects are returned unchanged with an empty token.
func splitScoped(subject, prefix string) (op, token string) {
	rest, ok := CutSubject(subject, prefix)
	if !ok {
		return subject, ""
	}
	verb, tok, found := strings.Cut(rest, ".")
	if !found {
		return subject, ""
	}
	return Subject(prefix, verb), tok
}

// AuthzSubject is a subject nobody subscribes to, which an identity may publish to
// exactly when it has right op on name (a topic, or a group for OpGroup). The SDK
// publishes to it to learn, before doing anything, whether an operation is allowed.
func AuthzSubject(op Operation, name string) string {
	if op == OpGroup {
		return Subject(authzPrefix, string(op), EncodeGroupID(name))
	}
	return Subject(authzPrefix, string(op), EncodeTopic(name))
}

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
	return inboxToken + "_" + kind + "_" + id
}

// HandOffSubject is where node takes requests to hand off the leadership of one
// stream it leads (request/reply, JSON bodies).
func HandOffSubject(node string) string { return Subject(nodePrefix, node, "handoff") }

// StableSubject is where node answers the last stable offset and aborted
// transactions of a partition it leads (request/reply, JSON bodies).
func StableSubject(node string) string { return Subject(nodePrefix, node, "stable") }

// BridgeStatusSubject is where the runner of bridge name answers status requests
// (empty body; the answer is a BridgeStatus).
func BridgeStatusSubject(name string) string { return Subject(bridgeStatusPrefix, name) }

// KVStream is the name of the stream behind KV bucket.
func KVStream(bucket string) string { return kvStreamPrefix + bucket }

// KVKeySubject is the subject key of KV bucket is stored on.
func KVKeySubject(bucket, key string) string { return Subject(kvToken, bucket, key) }

// KVDirectGetSubject is the JetStream API subject that reads key (or, with
// wildcards, keys) of KV bucket directly from its stream.
func KVDirectGetSubject(bucket, key string) string {
	return Subject(JSDirectGetPrefix, KVStream(bucket), kvToken, bucket, key)
}
