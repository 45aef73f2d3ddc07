package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// This file rebuilds a partition's damaged copy on one node from its healthy
// replicas (semantics.APITopicRepair).
//
// JetStream recopies a replica only when the replica leaves the stream's group and
// a node joins it afresh (catching up from the leader by snapshot). Removing a
// peer ($JS.API.STREAM.PEER.REMOVE) needs a node outside the group to take its
// place (nats-server v2.15.2 removePeerFromStreamLocked with requireReplicas), so
// it works as is only when the cluster has a node to spare. Without one (three
// replicas on three nodes) the repair scales the stream down by one replica and,
// while that scale-down is pending, removes the damaged peer: the peer-remove then
// leaves the group at the lowered count, not short of it, so JetStream accepts it,
// and the scale-down keeps the others (a scale-down alone keeps the leader and
// the peers with the least lag, so it cannot be told which one to drop). Scaling
// back up then places the missing replica on the only node left, the damaged
// one, which gets a fresh copy from the leader. Before anything is dropped, every
// other replica must be current and read back intact (each verified while it
// leads), so the records stay on at least two intact copies throughout.

// repairTimeout bounds one repair request: verifying each copy and waiting for the
// rebuilt one to catch up takes longer than other admin requests.
const repairTimeout = 10 * time.Minute

// repairStepTimeout bounds each wait of a repair: for a leadership move, for the
// group to drop the damaged peer, for the new copy to be current.
const repairStepTimeout = 3 * time.Minute

// jsErrPeerRemap is JetStream's error code for a peer-remove it cannot do: no
// node can take the peer's place.
const jsErrPeerRemap = 10075

// RepairPartition rebuilds the copy of partition req.Partition of topic req.Name
// held by node req.Node (or the one node its damage record names) from the
// partition's other replicas. It refuses, changing nothing, unless the partition
// is replicated, every replica is online and current, and every other replica's
// copy reads back intact. It answers once the new copy is current and verified.
//
// A partition stream with fewer replicas than its topic's replication factor (a
// repair interrupted between its scale-down and its scale-up, or a scale-up that
// failed) is scaled back up to it instead, and the new copy read back: resp.Node
// is "" then. When the node the damage record names holds no copy any more
// (its replica moved, or it left the cluster), there is nothing to rebuild:
// every copy the partition has is read back and, if all are intact, that
// node's entries are removed (clearGoneLocked); resp.Rebuilt is "" then, and
// no repair is counted.
func (a *Admin) RepairPartition(ctx context.Context, req semantics.RepairPartitionRequest) (resp semantics.RepairPartitionResponse, err error) {
	changed := false   // a copy was dropped or a replica added
	uncounted := false // not a repair: nothing to count
	defer func() {
		if uncounted {
			return
		}
		result := repairResult(err)
		switch {
		case err != nil && !changed:
			result = RepairRefused
		case err == nil && resp.Node == "":
			result = RepairRestored
		}
		a.repairs.add(result)
	}()
	if err := semantics.ValidateTopicName(req.Name); err != nil {
		return resp, err
	}
	t, err := a.meta.getTopic(ctx, req.Name)
	if err != nil {
		return resp, err
	}
	p := req.Partition
	part := semantics.PartitionString(req.Name, p)
	if p < 0 || p >= t.Config.Partitions {
		return resp, semantics.Errorf(semantics.ErrUnknownTopic,
			"partition %d of topic %q does not exist: the topic has partitions 0 to %d", p, req.Name, t.Config.Partitions-1)
	}
	if t.Config.Replicas < 2 {
		return resp, semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s has one replica: there is no other copy to rebuild it from; restore the partition from a backup", part)
	}
	stream := semantics.StreamName(req.Name, p)
	if _, running := a.repairing.LoadOrStore(stream, true); running {
		return resp, semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s is being repaired on node %s now: wait until that repair ends and look again ('qxd topic describe %s')", part, a.ns.Name(), req.Name)
	}
	defer a.repairing.Delete(stream)
	st, err := a.groupState(ctx, stream)
	if err != nil {
		return resp, fmt.Errorf("repair partition %s: %w", part, err)
	}
	if st.Replicas > 0 && st.Replicas < t.Config.Replicas && req.Node == "" {
		return a.restoreReplicas(ctx, t, p, st, &changed)
	}
	node, err := a.damagedNode(ctx, t, p, req.Node)
	if err != nil {
		return resp, err
	}
	damage, _, err := a.meta.getDamage(ctx, t.ID, p)
	if err != nil {
		return resp, fmt.Errorf("repair partition %s: %w", part, err)
	}
	resp.Node = node
	if !slices.Contains(st.peers(), node) && slices.ContainsFunc(damage.Damage, func(d semantics.BatchDamage) bool { return d.Node == node }) {
		// The copy the record names is gone: nothing to rebuild, and no repair
		// to count.
		uncounted = true
		resp.Verified, _, err = a.clearGoneLocked(ctx, t, p, node, st)
		if err == nil {
			resp.Replicas = st.peers()
			a.log.Info("damage record of a copy no longer held cleared", "topic", req.Name, "partition", p, "node", node)
		}
		return resp, err
	}
	if !slices.Contains(st.peers(), node) {
		return resp, semantics.Errorf(semantics.ErrInvalidRequest,
			"node %s holds no copy of partition %s (its replicas are on %s): nothing to rebuild there; name a node that holds one with --node",
			node, part, strings.Join(st.peers(), ", "))
	}
	if why := st.unsettled(t.Config.Replicas); why != "" {
		return resp, semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s cannot be repaired now: %s; dropping a copy now could lose acknowledged records; wait until every replica is online and current and try again", part, why)
	}
	// Every other copy must be whole before the damaged one goes.
	for _, h := range st.peers() {
		if h == node {
			continue
		}
		v, err := a.verifyOn(ctx, t, p, h)
		if err != nil {
			return resp, fmt.Errorf("repair partition %s: verify the copy on node %s: %w", part, h, err)
		}
		if len(v.Damage) > 0 {
			return resp, semantics.Errorf(semantics.ErrCorruptMessage,
				"partition %s cannot be repaired from node %s: its copy is damaged too (%s); nothing was changed: repair that copy first if another one is intact, or restore the partition",
				part, h, v.Damage[0].Detail)
		}
		resp.Verified = append(resp.Verified, h)
	}
	if st, err = a.groupState(ctx, stream); err != nil {
		return resp, fmt.Errorf("repair partition %s: %w", part, err)
	} else if why := st.unsettled(t.Config.Replicas); why != "" {
		return resp, semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s cannot be repaired now: %s; nothing was changed; try again once every replica is current", part, why)
	}
	if st.Leader == node { // hand the partition to a verified copy before dropping this one
		if err := a.leadOn(ctx, stream, resp.Verified[0]); err != nil {
			return resp, fmt.Errorf("repair partition %s: %w", part, err)
		}
	}
	a.log.Warn("rebuilding a damaged partition copy", "topic", req.Name, "partition", p, "node", node)
	changed = true
	inPlace, err := a.dropCopy(ctx, stream, node, t.Config.Replicas)
	if err != nil {
		return resp, fmt.Errorf("repair partition %s: drop the copy on node %s: %w", part, node, err)
	}
	st, err = a.waitGroup(ctx, stream, func(s groupState) bool {
		return s.settledAt(t.Config.Replicas) && slices.Contains(s.peers(), node) == inPlace
	}, "its replicas to be current again")
	if err != nil {
		return resp, fmt.Errorf("repair partition %s: the copy on node %s was dropped, but %w", part, node, err)
	}
	resp.Replicas = st.peers()
	resp.Rebuilt = node
	if !slices.Contains(st.peers(), node) {
		for _, r := range st.peers() {
			if !slices.Contains(resp.Verified, r) {
				resp.Rebuilt = r
			}
		}
		if _, err := a.meta.clearDamage(ctx, t.ID, p, node, 0, math.MaxUint64); err != nil {
			a.log.Warn("damage record not cleared", "topic", req.Name, "partition", p, "node", node, "err", err)
		}
	}
	v, err := a.verifyOn(ctx, t, p, resp.Rebuilt)
	if err != nil {
		return resp, fmt.Errorf("repair partition %s: verify the new copy on node %s: %w", part, resp.Rebuilt, err)
	}
	resp.Batches = v.Batches
	if len(v.Damage) > 0 {
		return resp, semantics.Errorf(semantics.ErrCorruptMessage,
			"partition %s: the new copy on node %s does not read back intact (%s): check that node's disk", part, resp.Rebuilt, v.Damage[0].Detail)
	}
	a.log.Info("partition copy rebuilt", "topic", req.Name, "partition", p, "node", resp.Rebuilt)
	return resp, nil
}

// clearGoneCopy removes node's entries from partition p's damage record when
// node holds no copy of p any more (its replica moved to another node, or the
// node left the cluster) and every copy p has now reads back intact: the copy
// the entries named is gone, and there is nothing of node's to rebuild. gone
// reports whether node holds no copy (then a repair is not the thing to try);
// while the partition is unsettled, or another copy does not read back intact,
// it changes nothing and returns the reason in err. cleared are the entries it
// removed: only those there before it read the copies back.
func (a *Admin) clearGoneCopy(ctx context.Context, t semantics.TopicMeta, p int32, node string) (gone bool, cleared []semantics.BatchDamage, err error) {
	part := semantics.PartitionString(t.Name, p)
	stream := semantics.StreamName(t.Name, p)
	if _, running := a.repairing.LoadOrStore(stream, true); running {
		return false, nil, fmt.Errorf("partition %s is being repaired on node %s now", part, a.ns.Name())
	}
	defer a.repairing.Delete(stream)
	st, err := a.groupState(ctx, stream)
	if err != nil {
		return false, nil, fmt.Errorf("damage record of partition %s: %w", part, err)
	}
	if slices.Contains(st.peers(), node) {
		return false, nil, nil
	}
	_, cleared, err = a.clearGoneLocked(ctx, t, p, node, st)
	return true, cleared, err
}

// clearGoneLocked is clearGoneCopy for node, which holds no copy in the group
// st, with the partition held in a.repairing by the caller. It returns the nodes
// whose copies it read back intact and the entries it removed.
func (a *Admin) clearGoneLocked(ctx context.Context, t semantics.TopicMeta, p int32, node string, st groupState) (verified []string, cleared []semantics.BatchDamage, err error) {
	part := semantics.PartitionString(t.Name, p)
	rec, _, err := a.meta.getDamage(ctx, t.ID, p)
	if err != nil {
		return nil, nil, fmt.Errorf("damage record of partition %s: %w", part, err)
	}
	var known []semantics.BatchDamage
	for _, d := range rec.Damage {
		if d.Node == node {
			known = append(known, d)
		}
	}
	if len(known) == 0 {
		return nil, nil, nil
	}
	if why := st.unsettled(t.Config.Replicas); why != "" {
		return nil, nil, semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s: node %s holds no copy, but its damage entries stay while %s; try again once every replica is current", part, node, why)
	}
	for _, h := range st.peers() {
		v, err := a.verifyOn(ctx, t, p, h)
		if err != nil {
			return verified, nil, fmt.Errorf("partition %s: verify the copy on node %s: %w", part, h, err)
		}
		if len(v.Damage) > 0 {
			return verified, nil, semantics.Errorf(semantics.ErrCorruptMessage,
				"partition %s: node %s holds no copy, but its damage entries stay while the copy on node %s is damaged (%s): repair that copy first",
				part, node, h, v.Damage[0].Detail)
		}
		verified = append(verified, h)
	}
	if st, err := a.groupState(ctx, semantics.StreamName(t.Name, p)); err != nil || slices.Contains(st.peers(), node) {
		return verified, nil, semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s: its replicas changed while they were read back; nothing was changed: try again", part)
	}
	cleared, err = a.meta.clearScrubbed(ctx, t.ID, p, node, known, [][2]uint64{{0, math.MaxUint64}})
	if err != nil {
		return verified, nil, fmt.Errorf("partition %s: clear node %s's damage entries: %w", part, node, err)
	}
	return verified, cleared, nil
}

// restoreReplicas scales partition p of t, whose stream has st.Replicas replicas
// configured, below the topic's replication factor, back up to it, waits until
// the new copies are current, and reads them back.
func (a *Admin) restoreReplicas(ctx context.Context, t semantics.TopicMeta, p int32, st groupState, changed *bool) (semantics.RepairPartitionResponse, error) {
	var resp semantics.RepairPartitionResponse
	part := semantics.PartitionString(t.Name, p)
	stream := semantics.StreamName(t.Name, p)
	if up := a.jetStreamPeers(); up < t.Config.Replicas {
		return resp, semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s runs on %d of its %d replicas, and the cluster has %d nodes: start the missing nodes and try again", part, st.Replicas, t.Config.Replicas, up)
	}
	before := st.peers()
	a.log.Warn("scaling a partition back to its replication factor", "topic", t.Name, "partition", p, "replicas", t.Config.Replicas)
	*changed = true
	if err := a.setReplicas(ctx, stream, t.Config.Replicas); err != nil {
		return resp, fmt.Errorf("repair partition %s: scale up from %d to %d replicas: %w", part, st.Replicas, t.Config.Replicas, err)
	}
	st, err := a.waitGroup(ctx, stream, func(s groupState) bool { return s.settledAt(t.Config.Replicas) }, "its replicas to be current")
	if err != nil {
		return resp, fmt.Errorf("repair partition %s: scaled up to %d replicas, but %w", part, t.Config.Replicas, err)
	}
	resp.Replicas, resp.Verified = st.peers(), before
	for _, r := range resp.Replicas {
		if slices.Contains(before, r) {
			continue
		}
		resp.Rebuilt = r
		v, err := a.verifyOn(ctx, t, p, r)
		if err != nil {
			return resp, fmt.Errorf("repair partition %s: verify the new copy on node %s: %w", part, r, err)
		}
		resp.Batches = v.Batches
		if len(v.Damage) > 0 {
			return resp, semantics.Errorf(semantics.ErrCorruptMessage,
				"partition %s: the new copy on node %s does not read back intact (%s): check that node's disk", part, r, v.Damage[0].Detail)
		}
	}
	a.log.Info("partition scaled back to its replication factor", "topic", t.Name, "partition", p, "replicas", t.Config.Replicas)
	return resp, nil
}

// underReplicatedNote is describe's Problem for a partition whose stream has
// copies on have nodes (nodes), fewer than the want replicas of its topic; ""
// when it has them all.
func underReplicatedNote(have, want int, nodes []string) string {
	if have == 0 || have >= want {
		return ""
	}
	return fmt.Sprintf("under-replicated: %d of its %d replicas (on %s): an interrupted repair or a failed scale-up left it short; nodes started with --auto-repair (the default) scale it back on their own, or run 'qxd topic repair' for it",
		have, want, strings.Join(nodes, ", "))
}

// damagedNode is the node whose copy of partition p a repair rebuilds: named, or
// the one node p's damage record names.
func (a *Admin) damagedNode(ctx context.Context, t semantics.TopicMeta, p int32, named string) (string, error) {
	if named != "" {
		return named, nil
	}
	part := semantics.PartitionString(t.Name, p)
	rec, _, err := a.meta.getDamage(ctx, t.ID, p)
	if err != nil {
		return "", fmt.Errorf("repair partition %s: %w", part, err)
	}
	var nodes []string
	for _, d := range rec.Damage {
		if !slices.Contains(nodes, d.Node) {
			nodes = append(nodes, d.Node)
		}
	}
	switch len(nodes) {
	case 0:
		return "", semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s has no damage recorded: nothing to repair; run 'qxd topic describe --verify' to look for damage, or name the node with --node", part)
	case 1:
		return nodes[0], nil
	}
	return "", semantics.Errorf(semantics.ErrInvalidRequest,
		"partition %s is recorded damaged on nodes %s: repair one copy at a time, naming its node with --node", part, strings.Join(nodes, ", "))
}

// verifyRetryFor bounds how long verifyOn reads a page again while JetStream
// answers that it is between leaders: a few elections of its meta group or of
// the stream's.
const verifyRetryFor = 10 * time.Second

// verifyOn reads node's whole copy of partition p back, page after page, each
// page making node lead the partition first (VerifyPartition with Node): it
// records what it finds and clears what it reads intact.
//
// A page that fails because JetStream is between leaders (ErrUnavailable: its
// meta group's, for a moment after a leader change, when every node refuses
// leader reads, or the stream's, as right after the leadership is handed to
// node) is read again, after 50 ms and twice as long each time up to a second,
// for up to verifyRetryFor (within ctx) since the last page read: a repair must
// not fail over an election after it rebuilt a copy. A user's verify gets the
// same from the SDK, which sends the page again (Client.send).
func (a *Admin) verifyOn(ctx context.Context, t semantics.TopicMeta, p int32, node string) (semantics.VerifyPartitionResponse, error) {
	out := semantics.VerifyPartitionResponse{Leader: node}
	req := semantics.VerifyPartitionRequest{Name: t.Name, Partition: p, NextOffset: -1, Node: node}
	var since time.Time // when the pages began to fail between leaders
	backoff := 50 * time.Millisecond
	for moved := 0; ; {
		v, err := a.VerifyPartition(ctx, req)
		if errors.Is(err, semantics.ErrNotLeader) && moved < 3 { // the leadership moved on meanwhile
			moved++
			continue
		}
		if errors.Is(err, semantics.ErrUnavailable) && ctx.Err() == nil {
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) < verifyRetryFor {
				select {
				case <-ctx.Done():
					return out, err
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
		}
		if err != nil {
			return out, err
		}
		since, backoff = time.Time{}, 50*time.Millisecond
		out.Batches += v.Batches
		out.Records += v.Records
		out.Bytes += v.Bytes
		out.Damage = append(out.Damage, v.Damage...)
		if v.NextSeq == 0 {
			return out, nil
		}
		req.FromSeq, req.NextOffset = v.NextSeq, v.NextOffset
	}
}

// leadOn makes node lead stream, handing the leadership off from its leader, and
// waits until it does.
func (a *Admin) leadOn(ctx context.Context, stream, node string) error {
	ctx, cancel := context.WithTimeout(ctx, repairStepTimeout)
	defer cancel()
	var last error
	for {
		st, err := a.groupState(ctx, stream)
		switch {
		case err != nil:
			last = err
		case st.Leader == node:
			return nil
		case st.Leader != "":
			if err := a.place.handOffVia(ctx, st.Leader, stream, node); err != nil {
				last = err
			}
		}
		for range 10 {
			select {
			case <-ctx.Done():
				if last == nil {
					last = ctx.Err()
				}
				return fmt.Errorf("node %s does not take the lead of %s: %w", node, stream, last)
			case <-time.After(200 * time.Millisecond):
			}
			if st, err := a.groupState(ctx, stream); err == nil && st.Leader == node {
				return nil
			}
		}
	}
}

// dropCopy takes node's copy of stream out of its group so that JetStream places a
// fresh one: by a peer-remove where another node can take its place, else by
// scaling the stream down by one replica, removing the peer while that is
// pending, and scaling it back to replicas once the group is down to the others,
// so that the fresh copy is placed on node again (inPlace).
func (a *Admin) dropCopy(ctx context.Context, stream, node string, replicas int) (inPlace bool, err error) {
	peerRemove := map[string]string{"peer": node}
	code, err := a.jsRequest(ctx, semantics.Subject(semantics.JSStreamPeerRemovePrefix, stream), peerRemove)
	if err == nil {
		return false, nil
	}
	if code != jsErrPeerRemap {
		return false, fmt.Errorf("remove peer: %w", err)
	}
	// No node to spare.
	if err := a.setReplicas(ctx, stream, replicas-1); err != nil {
		return false, fmt.Errorf("scale down to %d replicas: %w", replicas-1, err)
	}
	for {
		code, err = a.jsRequest(ctx, semantics.Subject(semantics.JSStreamPeerRemovePrefix, stream), peerRemove)
		if err == nil || code == jsErrPeerNotMember {
			break
		}
		if code != jsErrPeerRemap || ctx.Err() != nil {
			// Undo the scale-down: one stacked on it keeps every peer.
			if uerr := a.setReplicas(context.WithoutCancel(ctx), stream, replicas); uerr != nil {
				return false, fmt.Errorf("remove peer: %w; and scale back up to %d replicas: %v (scale it up by hand)", err, replicas, uerr)
			}
			return false, fmt.Errorf("remove peer: %w", err)
		}
		select { // the scale-down is not applied yet
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := a.waitGroup(ctx, stream, func(s groupState) bool {
		return s.settledAt(replicas-1) && !slices.Contains(s.peers(), node)
	}, fmt.Sprintf("the group to shrink to %d replicas without node %s", replicas-1, node)); err != nil {
		return false, err
	}
	if err := a.setReplicas(ctx, stream, replicas); err != nil {
		return false, fmt.Errorf("scale back up to %d replicas: %w (scale it up by hand: the partition runs on %d replicas)", replicas, err, replicas-1)
	}
	return true, nil
}

// setReplicas sets stream's replicas to n, keeping the rest of its config as it
// is now (a trim meanwhile may have changed its metadata).
func (a *Admin) setReplicas(ctx context.Context, stream string, n int) error {
	s, err := a.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	cfg := s.CachedInfo().Config
	cfg.Replicas = n
	_, err = a.js.UpdateStream(ctx, cfg)
	return err
}

// jsErrPeerNotMember is JetStream's error code for a peer-remove of a node that is
// not in the group.
const jsErrPeerNotMember = 10040

// jsRequest sends a JetStream API request with body encoded as JSON and returns
// JetStream's error code and error, if any.
func (a *Admin) jsRequest(ctx context.Context, subject string, body any) (int, error) {
	b, _ := json.Marshal(body)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := a.nc.RequestWithContext(rctx, subject, b)
	if err != nil {
		return 0, err
	}
	var out struct {
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &out); err != nil {
		return 0, err
	}
	if out.Error != nil {
		return out.Error.ErrCode, errors.New(out.Error.Description)
	}
	return 0, nil
}

// groupState is a partition stream's group as its leader reports it.
type groupState struct {
	Replicas int // the stream's configured replicas
	Leader   string
	Peers    []peerState // the others
	Moving   bool        // JetStream is moving or rescaling the group
}

type peerState struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Pending bool   `json:"pending"`
	Lag     uint64 `json:"lag"`
}

// peers lists the nodes of the group, its leader first.
func (s groupState) peers() []string {
	var out []string
	if s.Leader != "" {
		out = append(out, s.Leader)
	}
	for _, p := range s.Peers {
		out = append(out, p.Name)
	}
	return out
}

// unsettled says why the group is not fit to lose a copy (replicas wanted): no
// leader, a move under way, fewer replicas than wanted, a replica offline or
// behind; "" when it is fit.
func (s groupState) unsettled(replicas int) string {
	switch {
	case s.Leader == "":
		return "it has no leader"
	case s.Moving:
		return "JetStream is moving or rescaling it"
	case len(s.peers()) < replicas:
		return fmt.Sprintf("it has %d of its %d replicas (on %s)", len(s.peers()), replicas, strings.Join(s.peers(), ", "))
	}
	var behind []string
	for _, p := range s.Peers {
		if !p.Current || p.Offline || p.Pending {
			behind = append(behind, p.Name)
		}
	}
	if len(behind) > 0 {
		return fmt.Sprintf("the replicas on %s are offline or behind the leader %s", strings.Join(behind, ", "), s.Leader)
	}
	return ""
}

// settledAt reports whether the group has exactly replicas current replicas and
// nothing under way.
func (s groupState) settledAt(replicas int) bool {
	return s.Replicas == replicas && len(s.peers()) == replicas && s.unsettled(replicas) == ""
}

// betweenLeaders reports whether a JetStream API error code is JetStream's
// answer while its meta group or the stream's group has no leader: 10008
// ("JetStream system temporarily unavailable": a node that counts the group
// leaderless answers so, before the leader's own answer, for a moment after
// every election), 10009 (not the cluster's leader) or 10118 (the stream
// offline). As partition.Reader takes them: worth asking again.
func betweenLeaders(code int) bool {
	switch code {
	case 10008, 10009, 10118:
		return true
	}
	return false
}

// groupState reads stream's group. An answer that JetStream is between
// leaders is an ErrUnavailable.
func (a *Admin) groupState(ctx context.Context, stream string) (groupState, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := a.nc.RequestWithContext(rctx, semantics.Subject(semantics.JSStreamInfoPrefix, stream), nil)
	if err != nil {
		return groupState{}, fmt.Errorf("stream info %s: %w", stream, err)
	}
	var out struct {
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Config struct {
			Replicas int `json:"num_replicas"`
		} `json:"config"`
		Cluster *struct {
			Leader   string          `json:"leader"`
			Replicas []peerState     `json:"replicas"`
			Desired  json.RawMessage `json:"desired"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal(m.Data, &out); err != nil {
		return groupState{}, fmt.Errorf("stream info %s: %w", stream, err)
	}
	if out.Error != nil {
		if betweenLeaders(out.Error.ErrCode) {
			return groupState{}, semantics.Errorf(semantics.ErrUnavailable, "stream info %s: %s (JetStream error %d)", stream, out.Error.Description, out.Error.ErrCode)
		}
		return groupState{}, fmt.Errorf("stream info %s: %s", stream, out.Error.Description)
	}
	s := groupState{Replicas: out.Config.Replicas}
	if c := out.Cluster; c != nil {
		s.Leader, s.Peers = c.Leader, c.Replicas
		s.Moving = len(c.Desired) > 0 && string(c.Desired) != "null"
	}
	return s, nil
}

// waitGroup waits until stream's group passes ok, and returns it.
func (a *Admin) waitGroup(ctx context.Context, stream string, ok func(groupState) bool, what string) (groupState, error) {
	ctx, cancel := context.WithTimeout(ctx, repairStepTimeout)
	defer cancel()
	var last groupState
	var lastErr error
	for {
		s, err := a.groupState(ctx, stream)
		if err == nil && ok(s) {
			return s, nil
		}
		if err == nil {
			last = s
		}
		lastErr = err
		select {
		case <-ctx.Done():
			why := last.unsettled(last.Replicas)
			if lastErr != nil {
				why = lastErr.Error()
			}
			return last, fmt.Errorf("waited %v for %s: its replicas are on %s (%s)", repairStepTimeout, what, strings.Join(last.peers(), ", "), why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
