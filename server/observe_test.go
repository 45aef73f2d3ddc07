package server_test

import (
	"testing"

	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestAPIName checks that requests are named by their operation only: the names
// stay few whatever topics, groups or subjects clients send.
func TestAPIName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ subject, want string }{
		{semantics.WriterSubject("orders.eu", 3), "produce"},
		{semantics.TopicAPISubject(semantics.APITopicCreate, "orders.eu"), "topic.create"},
		{semantics.APITopicCreate, "topic.create"},
		{semantics.APITopicList, "topic.list"},
		{semantics.TopicAPISubject(semantics.APITopicVerify, "orders.eu"), "topic.verify"},
		{semantics.TopicAPISubject(semantics.APITopicReportDamage, "orders.eu"), "topic.report_damage"},
		{semantics.APIClusterInfo, "cluster.info"},
		{semantics.APIBridgeDescribe, "bridge.describe"},
		{semantics.GroupSubject(semantics.GroupJoin, "billing"), "group.join"},
		{semantics.GroupList, "group.list"},
		{semantics.TxnSubject(semantics.TxnEnd, "etl.1"), "txn.end"},
		{semantics.TxnList, "txn.list"},
		{"qxd.txn.nonsense.etl", "other"},
		{"qxd.api.topic.nonsense.orders", "other"},
		{"qxd.api.made.up.subject", "other"},
		{"qxd.grp.nonsense.billing", "other"},
		{"elsewhere", "other"},
	} {
		if got := server.APIName(tc.subject); got != tc.want {
			t.Errorf("APIName(%q) = %q, want %q", tc.subject, got, tc.want)
		}
	}
}
