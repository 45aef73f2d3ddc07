package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// The console's JSON API, under /api/. Reads and changes go through the same
// services, with the same errors, as the CLI: the SDK's admin client over the
// node's in-process connection (topics, cluster, groups, which reach the group
// coordinator wherever it runs) and the node's fetch service (records).

const (
	// DefaultRecordLimit is how many records /api/…/records returns unless asked.
	DefaultRecordLimit = 50
	// MaxRecordLimit caps limit: the browser never loads a whole partition.
	MaxRecordLimit = 500
	// maxShownValue caps the bytes of one key or value shown; the rest is cut.
	maxShownValue = 64 << 10
	// maxReadBytes bounds the record batches one browse request reads.
	maxReadBytes = 8 << 20
	// maxBody bounds a mutation's JSON body.
	maxBody = 64 << 10
	// apiTimeout bounds one API request's work.
	apiTimeout = 30 * time.Second
)

// controlBatch is the attribute bit of Kafka's control (transaction marker) batches.
const controlBatch = 0x20

// api serves /api/. Each handler checks the signed-in user's rights (auth.go)
// before it calls a service: the services run with the node's own rights.
type api struct {
	r  *running
	cl *qxd.Client
}

// apiError is the body of every /api/ error.
type apiError struct {
	Error string `json:"error"`
	// Code is the Kafka error name when the error has one (UNKNOWN_TOPIC_OR_PARTITION).
	Code string `json:"code,omitempty"`
}

func (a *api) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/me", a.me)
	mux.HandleFunc("GET /api/cluster", a.cluster)
	mux.HandleFunc("GET /api/topics", a.listTopics)
	mux.HandleFunc("POST /api/topics", a.createTopic)
	mux.HandleFunc("GET /api/topics/{topic}", a.describeTopic)
	mux.HandleFunc("DELETE /api/topics/{topic}", a.deleteTopic)
	mux.HandleFunc("POST /api/topics/{topic}/config", a.alterConfig)
	mux.HandleFunc("POST /api/topics/{topic}/partitions", a.addPartitions)
	mux.HandleFunc("GET /api/topics/{topic}/partitions/{partition}/records", a.records)
	mux.HandleFunc("GET /api/groups", a.listGroups)
	mux.HandleFunc("GET /api/groups/{group}", a.describeGroup)
	mux.HandleFunc("POST /api/groups/{group}/seek", a.seekGroup)
	mux.HandleFunc("GET /api/bridges", a.bridges)
	mux.HandleFunc("GET /api/events", a.events)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, req *http.Request) {
		fail(w, http.StatusNotFound, fmt.Errorf("no API at %s %s: see docs/operations.md, Console", req.Method, req.URL.Path))
	})
}

// fail writes an error with code.
func fail(w http.ResponseWriter, code int, err error) {
	e := apiError{Error: err.Error()}
	var se *semantics.Error
	if errors.As(err, &se) {
		e.Code = se.Name
	}
	writeJSON(w, code, e)
}

// failService writes a service's error with the HTTP status its kind calls for.
func failService(w http.ResponseWriter, err error) {
	fail(w, statusOf(err), err)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, semantics.ErrUnknownTopic), errors.Is(err, semantics.ErrGroupIDNotFound):
		return http.StatusNotFound
	case errors.Is(err, semantics.ErrTopicExists), errors.Is(err, semantics.ErrNonEmptyGroup):
		return http.StatusConflict
	case errors.Is(err, semantics.ErrInvalidTopic), errors.Is(err, semantics.ErrInvalidPartitions),
		errors.Is(err, semantics.ErrInvalidReplicationFactor), errors.Is(err, semantics.ErrInvalidConfig),
		errors.Is(err, semantics.ErrInvalidRequest), errors.Is(err, semantics.ErrOffsetOutOfRange),
		errors.Is(err, semantics.ErrInvalidGroupID), errors.Is(err, semantics.ErrPolicyViolation):
		return http.StatusBadRequest
	case errors.Is(err, semantics.ErrTopicAuthorizationFailed), errors.Is(err, semantics.ErrGroupAuthorizationFailed),
		errors.Is(err, semantics.ErrClusterAuthorizationFailed):
		return http.StatusForbidden
	case errors.Is(err, semantics.ErrTimeout), errors.Is(err, semantics.ErrUnavailable),
		errors.Is(err, semantics.ErrNotCoordinator), errors.Is(err, semantics.ErrCoordinatorNotAvailable),
		errors.Is(err, semantics.ErrTopicNotReady), errors.Is(err, semantics.ErrNotLeader),
		errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func reqContext(req *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(req.Context(), apiTimeout)
}

// allowed is true when err, a rights check, is nil; else it answers with err.
func allowed(w http.ResponseWriter, err error) bool {
	if err != nil {
		failService(w, err)
		return false
	}
	return true
}

func (a *api) me(w http.ResponseWriter, req *http.Request) {
	p := who(req)
	writeJSON(w, http.StatusOK, Me{Secured: p.grant != nil, User: p.name, Grant: p.grant})
}

// decodeBody reads req's JSON body into v, refusing unknown fields.
func decodeBody(w http.ResponseWriter, req *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("%s %s: the body is not the JSON expected: %v", req.Method, req.URL.Path, err))
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		fail(w, http.StatusBadRequest, fmt.Errorf("%s %s: the body holds more than one JSON object; send one", req.Method, req.URL.Path))
		return false
	}
	return true
}

// ClusterView is the body of GET /api/cluster.
type ClusterView struct {
	// Node is the node serving this HTTP port; Sync its sync setting ("always" or
	// an interval).
	Node string `json:"node"`
	Sync string `json:"sync"`
	semantics.ClusterInfo
}

func syncString(d time.Duration) string {
	if d <= 0 {
		return "always"
	}
	return d.String()
}

func (a *api) cluster(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := reqContext(req)
	defer cancel()
	info, err := a.cl.Admin().ClusterInfo(ctx)
	if err != nil {
		failService(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ClusterView{Node: a.r.h.Name(), Sync: syncString(a.r.h.Sync()), ClusterInfo: info})
}

func (a *api) listTopics(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := reqContext(req)
	defer cancel()
	ts, err := a.cl.Admin().ListTopics(ctx)
	if err != nil {
		failService(w, err)
		return
	}
	if ts == nil {
		ts = []qxd.TopicInfo{}
	}
	writeJSON(w, http.StatusOK, ts)
}

// TopicView is the body of GET /api/topics/{topic}.
type TopicView struct {
	Topic      qxd.TopicInfo       `json:"topic"`
	Partitions []qxd.PartitionInfo `json:"partitions"`
}

func (a *api) describeTopic(w http.ResponseWriter, req *http.Request) {
	if !allowed(w, who(req).describeRight(req.PathValue("topic"))) {
		return
	}
	ctx, cancel := reqContext(req)
	defer cancel()
	d, err := a.cl.Admin().DescribeTopic(ctx, req.PathValue("topic"))
	if err != nil {
		failService(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TopicView{Topic: d.Topic, Partitions: d.Partitions})
}

// CreateTopic is the body of POST /api/topics. Config takes the keys of
// `qxd topic alter-config` (qxd's or Kafka's names) and their values as the CLI
// reads them.
type CreateTopic struct {
	Name       string            `json:"name"`
	Partitions int32             `json:"partitions"`
	Replicas   int               `json:"replicas"`
	Config     map[string]string `json:"config"`
}

func (a *api) createTopic(w http.ResponseWriter, req *http.Request) {
	var body CreateTopic
	if !decodeBody(w, req, &body) {
		return
	}
	if err := semantics.ValidateTopicName(body.Name); err != nil {
		failService(w, fmt.Errorf("create topic %q: %w", body.Name, err))
		return
	}
	if !allowed(w, who(req).topicRight(semantics.OpAdmin, body.Name)) {
		return
	}
	cfg, err := semantics.WithConfig(body.Name, semantics.TopicConfig{Partitions: body.Partitions, Replicas: body.Replicas}, body.Config)
	if err != nil {
		failService(w, fmt.Errorf("create topic %q: %w", body.Name, err))
		return
	}
	ctx, cancel := reqContext(req)
	defer cancel()
	t, err := a.cl.Admin().CreateTopic(ctx, body.Name, cfg)
	if err != nil {
		failService(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (a *api) deleteTopic(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := reqContext(req)
	defer cancel()
	name := req.PathValue("topic")
	if !allowed(w, who(req).topicRight(semantics.OpAdmin, name)) {
		return
	}
	if err := a.cl.Admin().DeleteTopic(ctx, name); err != nil {
		failService(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

// AlterConfig is the body of POST /api/topics/{topic}/config: keys to set and keys
// to put back to their defaults, as `qxd topic alter-config --set/--delete`.
type AlterConfig struct {
	Set    map[string]string `json:"set"`
	Delete []string          `json:"delete"`
}

func (a *api) alterConfig(w http.ResponseWriter, req *http.Request) {
	if !allowed(w, who(req).topicRight(semantics.OpAdmin, req.PathValue("topic"))) {
		return
	}
	var body AlterConfig
	if !decodeBody(w, req, &body) {
		return
	}
	ctx, cancel := reqContext(req)
	defer cancel()
	t, err := a.cl.Admin().AlterTopicConfig(ctx, req.PathValue("topic"), body.Set, body.Delete...)
	if err != nil {
		failService(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// AddPartitions is the body of POST /api/topics/{topic}/partitions: the new total.
type AddPartitions struct {
	Total int32 `json:"total"`
}

func (a *api) addPartitions(w http.ResponseWriter, req *http.Request) {
	if !allowed(w, who(req).topicRight(semantics.OpAdmin, req.PathValue("topic"))) {
		return
	}
	var body AddPartitions
	if !decodeBody(w, req, &body) {
		return
	}
	ctx, cancel := reqContext(req)
	defer cancel()
	t, err := a.cl.Admin().AddPartitions(ctx, req.PathValue("topic"), body.Total)
	if err != nil {
		failService(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (a *api) listGroups(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := reqContext(req)
	defer cancel()
	gs, err := a.cl.Admin().ListGroups(ctx)
	if err != nil {
		failService(w, err)
		return
	}
	// A user sees the groups it has a right on, as Kafka's ListGroups shows them.
	p := who(req)
	shown := []qxd.GroupSummary{}
	for _, g := range gs {
		if p.allows(semantics.OpGroup, g.Group) {
			shown = append(shown, g)
		}
	}
	gs = shown
	writeJSON(w, http.StatusOK, gs)
}

func (a *api) describeGroup(w http.ResponseWriter, req *http.Request) {
	if !allowed(w, who(req).groupRight(req.PathValue("group"))) {
		return
	}
	ctx, cancel := reqContext(req)
	defer cancel()
	d, err := a.cl.Admin().DescribeGroup(ctx, req.PathValue("group"))
	if err != nil {
		failService(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// Records is the body of GET /api/topics/{topic}/partitions/{partition}/records.
type Records struct {
	Topic          string       `json:"topic"`
	Partition      int32        `json:"partition"`
	LogStartOffset int64        `json:"log_start_offset"`
	HighWatermark  int64        `json:"high_watermark"`
	From           int64        `json:"from"`
	Records        []RecordView `json:"records"`
	// Next is the offset to ask for the records after these.
	Next int64 `json:"next"`
}

// RecordView is one record, its key and value shown safely: Format is "json"
// (pretty-printed), "text" (valid UTF-8) or "base64" (Hex holds the first bytes
// in hex too); null when the key or value is null.
type RecordView struct {
	Offset    int64         `json:"offset"`
	Timestamp time.Time     `json:"timestamp"`
	Key       *ShownBytes   `json:"key"`
	Value     *ShownBytes   `json:"value"`
	Headers   []ShownHeader `json:"headers"`
}

// ShownHeader is a record header, its value shown safely.
type ShownHeader struct {
	Key   string      `json:"key"`
	Value *ShownBytes `json:"value"`
}

// ShownBytes is bytes made safe to show.
type ShownBytes struct {
	Format    string `json:"format"`
	Data      string `json:"data"`
	Hex       string `json:"hex,omitempty"`
	Size      int    `json:"size"`
	Truncated bool   `json:"truncated,omitempty"`
}

// show renders b: pretty JSON, text, or base64 with a hex preview.
func show(b []byte) *ShownBytes {
	if b == nil {
		return nil
	}
	s := &ShownBytes{Size: len(b)}
	if len(b) > maxShownValue {
		b, s.Truncated = b[:maxShownValue], true
	}
	trimmed := bytes.TrimSpace(b)
	if !s.Truncated && len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
		var out bytes.Buffer
		if json.Indent(&out, trimmed, "", "  ") == nil {
			s.Format, s.Data = "json", out.String()
			return s
		}
	}
	if utf8.Valid(b) && printable(b) {
		s.Format, s.Data = "text", string(b)
		return s
	}
	s.Format, s.Data = "base64", base64.StdEncoding.EncodeToString(b)
	s.Hex = hex.EncodeToString(b[:min(len(b), 256)])
	return s
}

// printable reports whether b has no control characters other than tab and newlines.
func printable(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			return false
		}
	}
	return true
}

func (a *api) records(w http.ResponseWriter, req *http.Request) {
	topic := req.PathValue("topic")
	q := req.URL.Query()
	p64, err := strconv.ParseInt(req.PathValue("partition"), 10, 32)
	if err != nil || p64 < 0 {
		fail(w, http.StatusBadRequest, fmt.Errorf("partition %q of topic %q is not a partition number: give 0 or more", req.PathValue("partition"), topic))
		return
	}
	p := int32(p64)
	limit := DefaultRecordLimit
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > MaxRecordLimit {
			fail(w, http.StatusBadRequest, fmt.Errorf("limit %q: give 1 to %d records; page on with the answer's next offset", s, MaxRecordLimit))
			return
		}
	}
	offStr, timeStr := q.Get("offset"), q.Get("time")
	if offStr != "" && timeStr != "" {
		fail(w, http.StatusBadRequest, errors.New("both offset and time given: give one (or neither, for the latest records)"))
		return
	}
	ctx, cancel := reqContext(req)
	defer cancel()
	if err := semantics.ValidateTopicName(topic); err != nil {
		failService(w, err)
		return
	}
	if !allowed(w, who(req).topicRight(semantics.OpConsume, topic)) {
		return
	}
	meta, err := a.r.h.Topic(ctx, topic)
	if err != nil {
		failService(w, err)
		return
	}
	if p >= meta.Config.Partitions {
		failService(w, semantics.Errorf(semantics.ErrUnknownTopic,
			"topic %q has partitions 0 to %d: partition %d does not exist", topic, meta.Config.Partitions-1, p))
		return
	}
	rd := partition.NewReader(a.r.h.Conn(), topic, p, true)
	offs, err := rd.ReadOffsets(ctx, func(ctx context.Context) (int64, error) { return a.r.h.Checkpoint(ctx, meta.ID, p) })
	if err != nil {
		failService(w, fmt.Errorf("browse %s: read its offsets: %w", semantics.PartitionString(topic, p), err))
		return
	}
	out := Records{Topic: topic, Partition: p, LogStartOffset: offs.LogStart, HighWatermark: offs.HighWatermark, Records: []RecordView{}}
	var from int64
	switch {
	case offStr != "":
		from, err = strconv.ParseInt(offStr, 10, 64)
		if err != nil || from < 0 {
			fail(w, http.StatusBadRequest, fmt.Errorf("offset %q: give an offset from %d (log start) to %d (high watermark)", offStr, offs.LogStart, offs.HighWatermark))
			return
		}
		if from < offs.LogStart || from > offs.HighWatermark {
			failService(w, semantics.Errorf(semantics.ErrOffsetOutOfRange,
				"offset %d of %s is out of range: give %d (log start) to %d (high watermark)", from, semantics.PartitionString(topic, p), offs.LogStart, offs.HighWatermark))
			return
		}
	case timeStr != "":
		ts, err := parseTime(timeStr)
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		from = offs.HighWatermark
		m, found, err := rd.OffsetForTime(ctx, offs, ts.UnixMilli())
		if err != nil {
			failService(w, fmt.Errorf("browse %s from %s: %w", semantics.PartitionString(topic, p), timeStr, err))
			return
		}
		if found {
			from = m.Offset
		}
		out.From = from
		a.read(ctx, w, &out, from, limit, ts.UnixMilli())
		return
	default:
		from = max(offs.LogStart, offs.HighWatermark-int64(limit))
	}
	out.From = from
	a.read(ctx, w, &out, from, limit, 0)
}

// parseTime reads RFC 3339 or Unix milliseconds.
func parseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: give RFC 3339 (2026-01-02T15:04:05Z) or Unix milliseconds", s)
	}
	return t, nil
}

// read fills out with up to limit records from offset from (and, when minTS is
// set, timestamps at or after it) through the node's fetch service.
func (a *api) read(ctx context.Context, w http.ResponseWriter, out *Records, from int64, limit int, minTS int64) {
	next, read := from, 0
	var recs []semantics.Record
	for len(out.Records) < limit && next < out.HighWatermark && read < maxReadBytes {
		res, err := a.r.h.Fetcher().Fetch(ctx, server.FetchRequest{Topic: out.Topic, Partition: out.Partition, Offset: next})
		if err != nil {
			failService(w, err)
			return
		}
		if len(res.Batches) == 0 {
			break
		}
		advanced := false
		for _, b := range res.Batches {
			read += len(b)
			h, err := semantics.ParseBatchHeader(b)
			if err != nil {
				failService(w, fmt.Errorf("browse %s at %d: %w", semantics.PartitionString(out.Topic, out.Partition), next, err))
				return
			}
			end := h.BaseOffset + int64(h.LastOffsetDelta) + 1
			if end > next {
				next, advanced = end, true
			}
			if h.Attributes&controlBatch != 0 { // transaction markers hold no records to show
				continue
			}
			recs, err = semantics.DecodeRecords(recs[:0], b, out.Topic, out.Partition)
			if err != nil {
				failService(w, fmt.Errorf("browse %s at %d: %w", semantics.PartitionString(out.Topic, out.Partition), h.BaseOffset, err))
				return
			}
			for _, r := range recs {
				if r.Offset < from || minTS > 0 && r.Timestamp.UnixMilli() < minTS {
					continue
				}
				if len(out.Records) == limit {
					next = r.Offset
					goto done
				}
				v := RecordView{Offset: r.Offset, Timestamp: r.Timestamp.UTC(), Key: show(r.Key), Value: show(r.Value), Headers: []ShownHeader{}}
				for _, hd := range r.Headers {
					v.Headers = append(v.Headers, ShownHeader{Key: hd.Key, Value: show(hd.Value)})
				}
				out.Records = append(out.Records, v)
			}
		}
		if !advanced {
			break
		}
	}
done:
	out.Next = next
	if n := len(out.Records); n > 0 && out.Next <= out.Records[n-1].Offset {
		out.Next = out.Records[n-1].Offset + 1
	}
	writeJSON(w, http.StatusOK, out)
}
