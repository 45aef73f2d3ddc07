package semantics

import (
	"fmt"
	"strings"
	"time"
)

// Bridges connect plain NATS subjects and topics. An ingest bridge takes the messages
// published on a subject pattern into a topic; an egress bridge publishes a topic's
// records as plain NATS messages on subjects made from a template.

// Bridge kinds.
const (
	BridgeIngest = "ingest"
	BridgeEgress = "egress"
)

// Egress modes.
const (
	// EgressFast publishes each record as soon as it is appended, from the tail of
	// every partition: at-most-once (records appended while the bridge moves to
	// another node are not published).
	EgressFast = "fast"
	// EgressReliable reads the topic as the consumer group BridgeGroup(name) and
	// commits after publishing: at-least-once from the committed position, resuming
	// after node loss.
	EgressReliable = "reliable"
)

// Where a new reliable egress bridge, or a bridge reading a JetStream stream, starts.
const (
	BridgeStartEnd   = "end"
	BridgeStartStart = "start"
)

// MaxBridgeNameLen is the longest bridge name.
const MaxBridgeNameLen = 64

// maxSubjectLen bounds patterns and templates, well under NATS's own limits.
const maxSubjectLen = 1024

// Headers qxd adds to the NATS messages it makes of records (egress, the SDK's
// handler adapter) and to the replies an ingest bridge sends request-style publishers.
const (
	HeaderTopic     = "Qxd-Topic"
	HeaderPartition = "Qxd-Partition"
	HeaderOffset    = "Qxd-Offset"
	// HeaderKey holds the record's key when it is printable text without line
	// breaks; otherwise HeaderKeyB64 holds it in standard base64.
	HeaderKey    = "Qxd-Key"
	HeaderKeyB64 = "Qxd-Key-B64"
	// HeaderSubject is the NATS subject an ingest bridge took the record from. It is
	// stored as a record header.
	HeaderSubject = "Qxd-Subject"
	// HeaderError carries the error of a failed ingest, on the reply to a
	// request-style publisher; HeaderErrorCode its code.
	HeaderError     = "Qxd-Error"
	HeaderErrorCode = "Qxd-Error-Code"
	// HeaderSourceStream and HeaderSourceSeq name the JetStream stream and the
	// stream sequence a bridge reading a stream took the record from;
	// HeaderBridge and HeaderBridgeRev name that bridge and the revision of its
	// definition. All four are stored as record headers, and are how the bridge finds
	// what it already stored when it resumes.
	HeaderSourceStream = "Qxd-Source-Stream"
	HeaderSourceSeq    = "Qxd-Source-Seq"
	HeaderBridge       = "Qxd-Bridge"
	HeaderBridgeRev    = "Qxd-Bridge-Rev"
)

// CaptureStreamPrefix starts the name of the stream a capture bridge creates
// (CaptureStream).
const CaptureStreamPrefix = "QXD_CAPTURE_"

// CaptureStream is the JetStream stream a capture bridge named name creates on its
// pattern, so that JetStream publishers get an acknowledgement from it.
func CaptureStream(name string) string { return CaptureStreamPrefix + name }

// BridgeConsumer is the durable JetStream consumer a bridge reading a stream takes
// its messages with.
func BridgeConsumer(name string) string { return "qxd-bridge-" + name }

// BridgePriorityGroup is the priority group of a bridge's stream consumer: the
// consumer is pinned to one client of the group, so one runner takes messages even
// while two briefly overlap during a failover.
const BridgePriorityGroup = "qxd"

// maxStreamNameLen bounds source stream names, as JetStream does.
const maxStreamNameLen = 255

// Bridge is a bridge definition as stored in the bridges bucket (key: Name).
type Bridge struct {
	Name string `json:"name"`
	// Kind is BridgeIngest or BridgeEgress.
	Kind string `json:"kind"`
	// Topic is the target topic (ingest) or the source topic (egress).
	Topic string `json:"topic"`

	// From is the subject pattern an ingest bridge subscribes to ('*' and '>'
	// wildcards), or, with Capture, the pattern its capture stream stores.
	From string `json:"from,omitempty"`
	// Stream is the JetStream stream an ingest bridge reads instead of subscribing
	// to From: an existing stream, or (Capture) the stream CaptureStream(Name) the
	// bridge creates. Its messages are taken at-least-once by the durable consumer
	// BridgeConsumer(Name) and acknowledged once their record is stored.
	Stream string `json:"stream,omitempty"`
	// Filter takes only the messages of Stream on subjects matching this pattern
	// (optional; not with Capture).
	Filter string `json:"filter,omitempty"`
	// Capture makes the bridge create the stream CaptureStream(Name) on From (and
	// delete it with the bridge), so that JetStream publishers get an
	// acknowledgement from the stream and the bridge reads it.
	Capture bool `json:"capture,omitempty"`
	// Key says how an ingest bridge takes the record key: see ParseKeySpec. Default
	// "none".
	Key string `json:"key,omitempty"`
	// Headers says which NATS headers an ingest bridge carries over as record
	// headers: see ParseHeaderFilter. Default "all".
	Headers string `json:"headers,omitempty"`

	// To is an egress bridge's subject template: see ParseSubjectTemplate.
	To string `json:"to,omitempty"`
	// Mode is EgressFast or EgressReliable (default).
	Mode string `json:"mode,omitempty"`
	// Start is where a new reliable egress bridge starts: BridgeStartEnd (default,
	// the records appended after it is created) or BridgeStartStart (every stored
	// record). For an ingest bridge reading a stream: BridgeStartStart (default,
	// every message the stream holds) or BridgeStartEnd (the messages stored after
	// the bridge is created).
	Start string `json:"start,omitempty"`

	Created time.Time `json:"created,omitzero"`
	// Revision is the record's KV revision (not stored).
	Revision uint64 `json:"-"`
}

// BridgeGroup is the consumer group a reliable egress bridge reads its topic as.
func BridgeGroup(name string) string { return "qxd-bridge-" + name }

// BridgeQueue is the NATS queue group an ingest bridge subscribes in, so that a
// message is taken by one runner even while two briefly overlap during a failover.
func BridgeQueue(name string) string { return "qxd-bridge-" + name }

// WithDefaults fills the fields left empty with their defaults.
func (b Bridge) WithDefaults() Bridge {
	switch b.Kind {
	case BridgeIngest:
		if b.Key == "" {
			b.Key = "none"
		}
		if b.Headers == "" {
			b.Headers = "all"
		}
		if b.Capture && b.Stream == "" {
			b.Stream = CaptureStream(b.Name)
		}
		if b.Stream != "" && b.Start == "" {
			b.Start = BridgeStartStart
		}
	case BridgeEgress:
		if b.Mode == "" {
			b.Mode = EgressReliable
		}
		if b.Start == "" && b.Mode == EgressReliable {
			b.Start = BridgeStartEnd
		}
	}
	return b
}

// Validate checks a definition (after WithDefaults). Errors wrap ErrInvalidConfig,
// or ErrInvalidTopic for the topic name, and say what to change.
func (b Bridge) Validate() error {
	if err := ValidateBridgeName(b.Name); err != nil {
		return err
	}
	if err := ValidateTopicName(b.Topic); err != nil {
		return fmt.Errorf("bridge %q: %w", b.Name, err)
	}
	bad := func(format string, args ...any) error {
		return Errorf(ErrInvalidConfig, "bridge %q: "+format, append([]any{b.Name}, args...)...)
	}
	switch b.Kind {
	case BridgeIngest:
		if b.To != "" || b.Mode != "" {
			return bad("an ingest bridge (--from) takes no --to or --mode: those are for egress bridges (--from-topic)")
		}
		if err := b.validateSource(bad); err != nil {
			return err
		}
		k, err := ParseKeySpec(b.Key)
		if err != nil {
			return bad("%v", err)
		}
		if k.Kind == KeyFromToken {
			// An existing stream's subjects are checked by the node, which can read them.
			for _, p := range []string{b.From, b.Filter} {
				if p == "" {
					continue
				}
				if n := len(strings.Split(p, ".")); k.Token > n {
					return bad("key token:%d is beyond the pattern %q, which has %d tokens: use token:1 to token:%d",
						k.Token, p, n, n)
				}
			}
		}
		if _, err := ParseHeaderFilter(b.Headers); err != nil {
			return bad("%v", err)
		}
	case BridgeEgress:
		if b.From != "" || b.Key != "" || b.Headers != "" || b.Stream != "" || b.Filter != "" || b.Capture {
			return bad("an egress bridge (--from-topic) takes no --from, --key, --headers, --from-stream, --filter or --capture: those are for ingest bridges")
		}
		t, err := ParseSubjectTemplate(b.To)
		if err != nil {
			return bad("%v", err)
		}
		if err := checkReserved(t.Pattern(), "template"); err != nil {
			return bad("%v", err)
		}
		switch b.Mode {
		case EgressFast:
			if b.Start != "" {
				return bad("--start applies to reliable bridges only: a fast bridge publishes from the tail")
			}
		case EgressReliable:
			if b.Start != BridgeStartEnd && b.Start != BridgeStartStart {
				return bad("start %q is not valid: use end or start", b.Start)
			}
		default:
			return bad("mode %q is not valid: use fast (at-most-once) or reliable (at-least-once)", b.Mode)
		}
	default:
		return bad("kind %q is not valid: give --from PATTERN (ingest) or --from-topic TOPIC (egress)", b.Kind)
	}
	return nil
}

// validateSource checks where an ingest bridge takes its messages: a subject pattern
// (core NATS, or with Capture a stream the bridge creates on it) or an existing
// stream, optionally filtered.
func (b Bridge) validateSource(bad func(string, ...any) error) error {
	checkPattern := func(p, what string) error {
		if _, err := ParseSubjectPattern(p); err != nil {
			return bad("%s: %v", what, err)
		}
		if err := checkReserved(p, "pattern"); err != nil {
			return bad("%v", err)
		}
		return nil
	}
	switch {
	case b.Capture:
		if b.From == "" {
			return bad("--capture needs --from PATTERN: the subjects the capture stream stores")
		}
		if b.Stream != CaptureStream(b.Name) {
			return bad("--capture creates its own stream %s: to read the existing stream %q, give --from-stream without --capture and --from",
				CaptureStream(b.Name), b.Stream)
		}
		if b.Filter != "" {
			return bad("--filter applies to --from-stream: a capture bridge takes everything its stream stores on --from")
		}
		if err := checkPattern(b.From, "--from"); err != nil {
			return err
		}
	case b.Stream != "":
		if b.From != "" {
			return bad("give either --from PATTERN (core NATS; with --capture for JetStream publishers) or --from-stream STREAM (an existing stream), not both")
		}
		if err := ValidateStreamName(b.Stream); err != nil {
			return bad("%v", err)
		}
		if strings.HasPrefix(b.Stream, CaptureStreamPrefix) {
			return bad("stream %q is a capture bridge's stream (%s…): read JetStream publishers with --from PATTERN --capture", b.Stream, CaptureStreamPrefix)
		}
		if b.Filter != "" {
			if err := checkPattern(b.Filter, "--filter"); err != nil {
				return err
			}
		}
	default:
		if b.Filter != "" {
			return bad("--filter applies to --from-stream STREAM: with --from, the pattern itself chooses the subjects")
		}
		if err := checkPattern(b.From, "--from"); err != nil {
			return err
		}
	}
	switch {
	case b.Stream == "" && b.Start != "":
		return bad("--start applies to bridges reading a stream (--from-stream, --capture) and to reliable egress bridges: a core NATS ingest bridge takes what is published while it runs")
	case b.Stream != "" && b.Start != BridgeStartStart && b.Start != BridgeStartEnd:
		return bad("start %q is not valid: use start (every message the stream holds) or end (the messages stored from now on)", b.Start)
	}
	return nil
}

// ValidateStreamName checks the name of a JetStream stream a bridge reads: 1 to 255
// characters, none of them '.', '*', '>', a path separator, a space or a control
// character.
func ValidateStreamName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("stream name is empty: give the name of an existing JetStream stream")
	case len(name) > maxStreamNameLen:
		return fmt.Errorf("stream name %.20q… is %d characters long: the limit is %d", name, len(name), maxStreamNameLen)
	}
	for i, r := range name {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r) {
			return fmt.Errorf("stream name %q has the character %q at byte %d: JetStream stream names have no '.', '*', '>', '/', '\\' or spaces", name, r, i)
		}
	}
	return nil
}

// ValidateBridgeName checks a bridge name: 1 to MaxBridgeNameLen characters from
// [a-zA-Z0-9_-]. The name is a KV key, and part of a consumer group id and a queue
// group.
func ValidateBridgeName(name string) error {
	switch {
	case name == "":
		return Errorf(ErrInvalidRequest, "bridge name is empty: give a name of 1 to %d characters from [a-zA-Z0-9_-]", MaxBridgeNameLen)
	case len(name) > MaxBridgeNameLen:
		return Errorf(ErrInvalidRequest, "bridge name %.20q… is %d characters long: the limit is %d", name, len(name), MaxBridgeNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			continue
		}
		return Errorf(ErrInvalidRequest, "bridge name %q has the character %q at position %d: use only [a-zA-Z0-9_-]", name, rune(c), i)
	}
	return nil
}

func checkReserved(pattern, what string) error {
	if r := ReservedOverlap(pattern); r != "" {
		return fmt.Errorf("%s %q overlaps %s, which qxd or NATS itself uses (qxd's topics live under qxd.>): choose subjects outside it", what, pattern, r)
	}
	return nil
}

// ReservedOverlap returns the subject space qxd or NATS uses itself (qxd.>, $JS.>,
// $KV.>, $SYS.>, _INBOX.>) that the valid pattern overlaps, "" for none.
func ReservedOverlap(pattern string) string {
	for _, r := range reservedSpaces {
		if SubjectsOverlap(pattern, r) {
			return r
		}
	}
	return ""
}

// BridgeStatus is what a bridge's runner reports.
type BridgeStatus struct {
	// Node runs the bridge.
	Node string `json:"node"`
	// Since is when it started there.
	Since time.Time `json:"since"`
	// Messages counts the messages stored (ingest) or records published (egress)
	// since then.
	Messages int64 `json:"messages"`
	// Failed counts the messages that could not be stored (ingest) since then.
	Failed int64 `json:"failed"`
	// Taken counts the messages a bridge reading a stream took from it since then,
	// redeliveries included; Skipped the redelivered ones it found already stored
	// and acknowledged without storing them again; Backlog the stream's messages
	// not yet taken, as of the last message taken.
	Taken   int64  `json:"taken,omitempty"`
	Skipped int64  `json:"skipped,omitempty"`
	Backlog uint64 `json:"backlog,omitempty"`
	// LastError is the last failure, if any.
	LastError string `json:"last_error,omitempty"`
}

// BridgeRequest names one bridge (describe, delete).
type BridgeRequest struct {
	Name string `json:"name"`
}

// BridgeResponse answers create, delete and describe.
type BridgeResponse struct {
	Error  *APIError `json:"error,omitempty"`
	Bridge *Bridge   `json:"bridge,omitempty"`
	// Status is the runner's report (describe), nil when no runner answered.
	Status *BridgeStatus `json:"status,omitempty"`
}

// Failure returns the response's error, nil on success.
func (r *BridgeResponse) Failure() error { return r.Error.Err() }

// ListBridgesResponse answers list.
type ListBridgesResponse struct {
	Error   *APIError `json:"error,omitempty"`
	Bridges []Bridge  `json:"bridges"`
	// Runner is the node that runs the bridges, "" when none is known.
	Runner string `json:"runner,omitempty"`
}

// Failure returns the response's error, nil on success.
func (r *ListBridgesResponse) Failure() error { return r.Error.Err() }

// BridgeAck is an ingest bridge's JSON reply to a request-style publisher, sent once
// the record is stored (or failed for good). The reply also carries the headers
// HeaderTopic, HeaderPartition and HeaderOffset, or HeaderError and
// HeaderErrorCode.
type BridgeAck struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Error     *APIError `json:"error,omitempty"`
}
