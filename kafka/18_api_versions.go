package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// ApiVersions lists the implemented APIs. From v5 (KIP-1242) a client that
// names the cluster and broker it means to reach (both, or neither: one alone is
// INVALID_REQUEST) is answered REBOOTSTRAP_REQUIRED when this node is not that
// broker of that cluster, as Metadata names them: the client was sent to the
// wrong place and must read the metadata again from its bootstrap servers.
func handleApiVersions(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := apiVersionsResponse(req.Version, c.l.cfg.Auth != nil)
	if req.Version < 5 || (req.ClusterID == nil && req.NodeID == -1) {
		return ready(resp)
	}
	return func() kmsg.Response {
		if req.ClusterID == nil || req.NodeID == -1 {
			resp.ErrorCode, resp.ApiKeys = semantics.ErrInvalidRequest.Code, nil
			return resp
		}
		if cluster, id := c.b.Self(ctx); *req.ClusterID != cluster || req.NodeID != id {
			resp.ErrorCode, resp.ApiKeys = codeRebootstrapRequired, nil
		}
		return resp
	}
}

// transactionVersion is the feature that turns transactions v2 on (KIP-890
// part 2); qxd finalizes it at 2.
const transactionVersion = "transaction.version"

// apiVersionsResponse lists the implemented APIs and their versions; the SASL
// APIs only on a listener with SASL. From v3 it names the features: the feature
// transaction.version is finalized at 2 (KIP-890 part 2), so clients use Produce
// v12, EndTxn v5 and TxnOffsetCommit v5 for their transactions. A supported
// feature's minimum is 0 only in answers to v4 and up: the Java client before
// 3.9, which asks with v3, rejects a minimum below 1 and its network thread dies
// of it (KAFKA-17011), so those requests are told 1, as Kafka's brokers tell them.
func apiVersionsResponse(version int16, sasl bool) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		if !sasl && (k == kmsg.SASLHandshake.Int16() || k == kmsg.SASLAuthenticate.Int16()) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := apis[k]
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: listedMin(k), MaxVersion: a.max})
	}
	if version >= 3 {
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = transactionVersion, 0, 2
		if version < 4 {
			sf.MinVersion = 1
		}
		resp.SupportedFeatures = []kmsg.ApiVersionsResponseSupportedFeature{sf}
		ff := kmsg.NewApiVersionsResponseFinalizedFeature()
		ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = transactionVersion, 2, 2
		resp.FinalizedFeatures = []kmsg.ApiVersionsResponseFinalizedFeature{ff}
		resp.FinalizedFeaturesEpoch = 1 // the features never change
	}
	return resp
}
