package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

// SeekGroup is the body of POST /api/groups/{group}/seek: set the group's
// committed offsets of Topic (all its partitions, or Partitions) to To, as
// `qxd group seek` does; only while the group has no members.
type SeekGroup struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
	// To is "start", "end", an offset, "@" and Unix milliseconds, or an RFC 3339
	// time (the first record at or after it).
	To string `json:"to"`
	// DryRun computes the offsets and sets nothing.
	DryRun bool `json:"dry_run"`
}

// SeekResult is the answer of a seek: each partition's old and new offset.
type SeekResult struct {
	Group   string                  `json:"group"`
	DryRun  bool                    `json:"dry_run"`
	Changes []qxd.GroupOffsetChange `json:"changes"`
}

// parseTo reads a seek's position.
func parseTo(s string) (qxd.Offset, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return qxd.AtTime(t), nil
	}
	o, err := qxd.ParseOffset(s)
	if err != nil {
		return qxd.Offset{}, semantics.Errorf(semantics.ErrInvalidRequest,
			"seek to %q: give start, end, an offset, @ and Unix milliseconds, or an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	return o, nil
}

// seekGroup sets a group's committed offsets through the SDK's admin client, as
// `qxd group seek`: it needs the group right and consume on the topic, as there.
func (a *api) seekGroup(w http.ResponseWriter, req *http.Request) {
	group := req.PathValue("group")
	if err := semantics.ValidateGroupID(group); err != nil {
		failService(w, fmt.Errorf("seek group %q: %w", group, err))
		return
	}
	var body SeekGroup
	if !decodeBody(w, req, &body) {
		return
	}
	if err := semantics.ValidateTopicName(body.Topic); err != nil {
		failService(w, fmt.Errorf("seek group %q: %w", group, err))
		return
	}
	p := who(req)
	if !allowed(w, p.groupRight(group)) || !allowed(w, p.topicRight(semantics.OpConsume, body.Topic)) {
		return
	}
	to, err := parseTo(body.To)
	if err != nil {
		failService(w, fmt.Errorf("seek group %q: %w", group, err))
		return
	}
	ctx, cancel := reqContext(req)
	defer cancel()
	changes, err := a.cl.Admin().SeekGroupOffsets(ctx, group, qxd.GroupSeek{Topics: []string{body.Topic}, Partitions: body.Partitions, To: to, DryRun: body.DryRun})
	if err != nil {
		failService(w, err)
		return
	}
	if changes == nil {
		changes = []qxd.GroupOffsetChange{}
	}
	writeJSON(w, http.StatusOK, SeekResult{Group: group, DryRun: body.DryRun, Changes: changes})
}
