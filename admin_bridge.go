package qxd

import (
	"context"
	"fmt"

	"github.com/qxd-io/qxd/semantics"
)

// Bridge is a bridge definition: see semantics.Bridge for its fields. Build one
// with IngestBridge or EgressBridge. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type Bridge = semantics.Bridge

// IngestBridge defines a bridge that takes the messages plain NATS publishers send on
// subjects matching pattern ('*' and '>' wildcards) into topic. key says how the
// record key is taken: "token:N" (the subject's Nth token, from 1), "header:NAME",
// "subject", or "none" (default, ""). Messages published as requests are answered
// once their record is stored (a semantics.BridgeAck). Set Headers on the result to
// choose which headers carry over ("all" by default, "none", or a list).
func IngestBridge(name, pattern, topic, key string) Bridge {
	return Bridge{Name: name, Kind: semantics.BridgeIngest, From: pattern, Topic: topic, Key: key}
}

// CaptureBridge defines a bridge for JetStream publishers on subjects matching
// pattern: the bridge creates the stream semantics.CaptureStream(name) on pattern
// (deleted with the bridge), so a js.Publish gets its acknowledgement (and its
// Nats-Msg-Id dedupe) from the stream, and takes the stream's messages into topic
// at-least-once: each message is acknowledged once its record is stored, and a
// message delivered again after a failover is not stored twice when its record is
// found (see the architecture notes for the bound). key is as for IngestBridge.
func CaptureBridge(name, pattern, topic, key string) Bridge {
	return Bridge{Name: name, Kind: semantics.BridgeIngest, From: pattern, Capture: true, Topic: topic, Key: key}
}

// StreamBridge defines a bridge that takes the messages of the existing JetStream
// stream into topic, as CaptureBridge does, through the durable consumer
// semantics.BridgeConsumer(name). Set Filter on the result to take only the
// messages on some subjects, and Start to "end" to take only the messages stored
// after the bridge is created (default "start": every message the stream holds).
func StreamBridge(name, stream, topic, key string) Bridge {
	return Bridge{Name: name, Kind: semantics.BridgeIngest, Stream: stream, Topic: topic, Key: key}
}

// EgressBridge defines a bridge that publishes topic's records as plain NATS messages
// (see RecordMsg) on subjects made from template ("orders.{key}",
// "orders.{partition}", "orders.{offset}"). mode is "reliable" (default, ""):
// at-least-once from the committed position of the group "qxd-bridge-<name>", or
// "fast": at-most-once, each record published as it is appended.
func EgressBridge(name, topic, template, mode string) Bridge {
	return Bridge{Name: name, Kind: semantics.BridgeEgress, Topic: topic, To: template, Mode: mode}
}

// BridgeStatus is a running bridge's report: its node, since when, and counts. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type BridgeStatus = semantics.BridgeStatus

// BridgeDescription is a bridge with its runner's report.
type BridgeDescription struct {
	Bridge Bridge
	// Status is nil while no node runs the bridge (during a failover).
	Status *BridgeStatus
}

// CreateBridge validates and stores a bridge; the cluster starts running it at once.
// A bad definition (a pattern overlapping qxd's own subjects, an unknown topic or
// stream, a key token beyond the pattern or the stream's subjects, a capture pattern
// overlapping an existing stream, a loop back into the same topic) is refused with an
// error that says what to change, and nothing is stored or created.
func (a *Admin) CreateBridge(ctx context.Context, b Bridge) (Bridge, error) {
	var resp semantics.BridgeResponse
	if err := a.c.request(ctx, semantics.APIBridgeCreate, b, &resp); err != nil {
		return Bridge{}, fmt.Errorf("create bridge %q: %w", b.Name, err)
	}
	return bridgeResult(resp)
}

// DeleteBridge stops and removes a bridge. A reliable egress bridge's consumer group
// is deleted with it; so are a stream bridge's consumer and a capture bridge's stream
// (with the messages it holds that were not bridged yet).
func (a *Admin) DeleteBridge(ctx context.Context, name string) error {
	var resp semantics.BridgeResponse
	if err := a.c.request(ctx, semantics.APIBridgeDelete, semantics.BridgeRequest{Name: name}, &resp); err != nil {
		return fmt.Errorf("delete bridge %q: %w", name, err)
	}
	_, err := bridgeResult(resp)
	return err
}

// DescribeBridge returns a bridge's definition and its runner's report.
func (a *Admin) DescribeBridge(ctx context.Context, name string) (BridgeDescription, error) {
	var resp semantics.BridgeResponse
	if err := a.c.query(ctx, semantics.APIBridgeDescribe, semantics.BridgeRequest{Name: name}, &resp); err != nil {
		return BridgeDescription{}, fmt.Errorf("describe bridge %q: %w", name, err)
	}
	b, err := bridgeResult(resp)
	return BridgeDescription{Bridge: b, Status: resp.Status}, err
}

// ListBridges lists every bridge, sorted by name, and the node running them.
func (a *Admin) ListBridges(ctx context.Context) ([]Bridge, string, error) {
	var resp semantics.ListBridgesResponse
	if err := a.c.query(ctx, semantics.APIBridgeList, struct{}{}, &resp); err != nil {
		return nil, "", fmt.Errorf("list bridges: %w", err)
	}
	if err := resp.Error.Err(); err != nil {
		return nil, "", err
	}
	return resp.Bridges, resp.Runner, nil
}

func bridgeResult(resp semantics.BridgeResponse) (Bridge, error) {
	if err := resp.Error.Err(); err != nil {
		return Bridge{}, err
	}
	if resp.Bridge == nil {
		return Bridge{}, semantics.Errorf(semantics.ErrInvalidRequest, "response without bridge")
	}
	return *resp.Bridge, nil
}
