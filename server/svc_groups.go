package server

import (
	"context"
	"slices"
	"strings"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/semantics"
)

// GroupCoordinator is the group service: Kafka's consumer-group requests, answered
// by the group state machine (coordinator.Coordinator) and the committed-offset
// store, in process. The NATS door (semantics.Group* subjects) and a Kafka listener
// call the same methods.
type GroupCoordinator interface {
	Join(ctx context.Context, req groups.JoinRequest) (groups.JoinResponse, error)
	Sync(ctx context.Context, req groups.SyncRequest) (groups.SyncResponse, error)
	Heartbeat(ctx context.Context, req groups.HeartbeatRequest) error
	Leave(ctx context.Context, req groups.LeaveRequest) error
	CommitOffsets(ctx context.Context, req groups.CommitRequest) error
	FetchOffsets(ctx context.Context, req groups.FetchRequest) ([]semantics.OffsetEntry, error)
	DescribeGroup(ctx context.Context, group string) (groups.GroupDescription, error)
	ListGroups(ctx context.Context) ([]groups.GroupSummary, error)
	DeleteGroup(ctx context.Context, group string) error
	// DeleteOffsets deletes a group's commits of some partitions (Kafka's
	// OffsetDelete), fenced as a delete (coordinator.Coordinator.DeleteOffsets).
	DeleteOffsets(ctx context.Context, group string, parts []semantics.TopicPartition) error
	ResetOffsets(ctx context.Context, req groups.ResetRequest) error
}

var (
	_ GroupCoordinator = (*coordinator.Coordinator)(nil)
	_ GroupCoordinator = (*groupService)(nil)
)

// current returns the running coordinator, or NOT_COORDINATOR when this node does
// not coordinate the groups now.
func (s *groupService) current() (*coordinator.Coordinator, error) {
	if r := s.role.current(); r != nil {
		return r.coord, nil
	}
	return nil, semantics.Errorf(semantics.ErrNotCoordinator,
		"this node does not coordinate consumer groups now: the node leading the %s bucket does; retry there", semantics.GroupsBucket)
}

func (s *groupService) Join(ctx context.Context, req groups.JoinRequest) (groups.JoinResponse, error) {
	c, err := s.current()
	if err != nil {
		return groups.JoinResponse{}, err
	}
	return c.Join(ctx, req)
}

func (s *groupService) Sync(ctx context.Context, req groups.SyncRequest) (groups.SyncResponse, error) {
	c, err := s.current()
	if err != nil {
		return groups.SyncResponse{}, err
	}
	return c.Sync(ctx, req)
}

func (s *groupService) Heartbeat(ctx context.Context, req groups.HeartbeatRequest) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	return c.Heartbeat(ctx, req)
}

func (s *groupService) Leave(ctx context.Context, req groups.LeaveRequest) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	return c.Leave(ctx, req)
}

func (s *groupService) CommitOffsets(ctx context.Context, req groups.CommitRequest) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	return c.CommitOffsets(ctx, req)
}

func (s *groupService) FetchOffsets(ctx context.Context, req groups.FetchRequest) ([]semantics.OffsetEntry, error) {
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	return fetchOffsets(ctx, c, s.pendingOffsets, req)
}

// pendingFunc returns the partitions of a group whose offsets a transaction not
// yet completed holds.
type pendingFunc func(group string) ([]semantics.TopicPartition, error)

// pendingOffsets asks the transaction coordinator, which runs beside the group
// coordinator, for the partitions of group whose offsets a transaction not yet
// completed holds; NOT_COORDINATOR while it does not run on this node.
func (s *groupService) pendingOffsets(group string) ([]semantics.TopicPartition, error) {
	return (&Transactions{s: s.txns.Load()}).PendingOffsets(group)
}

// fetchOffsets answers an offset fetch from coord. With RequireStable, a
// partition asked for (any of the group's when none are named) whose offset a
// transaction not yet completed holds makes the answer UNSTABLE_OFFSET_COMMIT,
// which the client retries. The pending offsets are read before the stored ones:
// a transaction stores its offsets before it stops counting as pending, so an
// answer never holds an offset from before a transaction that completed first.
func fetchOffsets(ctx context.Context, coord GroupCoordinator, pending pendingFunc, req groups.FetchRequest) ([]semantics.OffsetEntry, error) {
	if req.RequireStable {
		held, err := pending(req.Group)
		if err != nil {
			return nil, err
		}
		var unstable []string
		for _, tp := range held {
			if len(req.Partitions) == 0 || slices.Contains(req.Partitions, tp) {
				unstable = append(unstable, semantics.PartitionString(tp.Topic, tp.Partition))
			}
		}
		if len(unstable) > 0 {
			slices.Sort(unstable)
			return nil, semantics.Errorf(semantics.ErrUnstableOffsetCommit,
				"group %q: a transaction not yet completed holds the offsets of %s; retry", req.Group, strings.Join(unstable, ", "))
		}
	}
	return coord.FetchOffsets(ctx, req)
}

func (s *groupService) DescribeGroup(ctx context.Context, group string) (groups.GroupDescription, error) {
	c, err := s.current()
	if err != nil {
		return groups.GroupDescription{}, err
	}
	return c.DescribeGroup(ctx, group)
}

func (s *groupService) ListGroups(ctx context.Context) ([]groups.GroupSummary, error) {
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	return c.ListGroups(ctx)
}

func (s *groupService) DeleteGroup(ctx context.Context, group string) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	return c.DeleteGroup(ctx, group)
}

func (s *groupService) DeleteOffsets(ctx context.Context, group string, parts []semantics.TopicPartition) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	return c.DeleteOffsets(ctx, group, parts)
}

func (s *groupService) ResetOffsets(ctx context.Context, req groups.ResetRequest) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	return c.ResetOffsets(ctx, req)
}
