package semantics_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

func TestGrantSubjects(t *testing.T) {
	t.Parallel()
	g := semantics.Grant{Produce: []string{"orders.eu"}, Consume: []string{"orders.eu"}, Admin: []string{"*"}, Groups: []string{"billing team"}}
	sp := g.Subjects("_INBOX_u_alice", []semantics.TopicPerms{{Name: "orders.eu", ID: "abc", Partitions: 2}, {Name: "other", ID: "x", Partitions: 1}})
	for _, want := range []string{
		"qxd.w.orders=eu.*",
		"qxd.w.orders=eu.*.*",
		"$JS.API.DIRECT.GET.KV_qxd_topics.$KV.qxd_topics.orders=eu",
		"$JS.API.DIRECT.GET.QXD_orders=eu_1",
		"$JS.API.CONSUMER.CREATE.QXD_orders=eu_0.>",
		"$JS.API.DIRECT.GET.KV_qxd_partitions.$KV.qxd_partitions.abc.*",
		"qxd.api.>",
		"qxd.grp.*.billing=20team",
		semantics.AuthzSubject(semantics.OpGroup, "billing team"),
	} {
		if !slices.Contains(sp.PublishAllow, want) {
			t.Errorf("publish allow lacks %s: %v", want, sp.PublishAllow)
		}
	}
	for _, s := range sp.PublishAllow {
		if strings.Contains(s, "QXD_other") || strings.Contains(s, "qxd.w.>") {
			t.Errorf("publish allow has %s, which the grant does not give", s)
		}
	}
	// Group rights: the coordinator's start announcements too.
	if !slices.Equal(sp.SubscribeAllow, []string{"_INBOX_u_alice.>", semantics.GroupCoordinatorStarted}) {
		t.Errorf("subscribe allow %v", sp.SubscribeAllow)
	}
	for _, want := range []string{"qxd.t.>", "$KV.>", "$JS.API.DIRECT.GET.KV_qxd_offsets"} {
		if !slices.Contains(sp.PublishDeny, want) {
			t.Errorf("publish deny lacks %s", want)
		}
	}
}

// TestGrantWriterSubjects checks which writer subjects produce rights on one
// topic open: the topic's partitions' writers, also on one node, and nothing of
// another topic nor longer subjects under the topic's.
func TestGrantWriterSubjects(t *testing.T) {
	t.Parallel()
	sp := semantics.Grant{Produce: []string{"orders.eu"}}.Subjects("_INBOX_u_alice", nil)
	allowed := func(subject string) bool {
		return slices.ContainsFunc(sp.PublishAllow, func(p string) bool { return subjectMatches(p, subject) }) &&
			!slices.ContainsFunc(sp.PublishDeny, func(p string) bool { return subjectMatches(p, subject) })
	}
	for _, tc := range []struct {
		name    string
		subject string
		want    bool
	}{
		{"partition writer", semantics.WriterSubject("orders.eu", 3), true},
		{"partition writer on a node", semantics.WriterDirectSubject("orders.eu", 3, "n1"), true},
		{"partition writer on a node with dots in its name", semantics.WriterDirectSubject("orders.eu", 3, "host.example.com"), true},
		{"another topic's writer", semantics.WriterSubject("orders.us", 3), false},
		{"another topic's writer on a node", semantics.WriterDirectSubject("orders.us", 3, "n1"), false},
		{"under a node's writer", semantics.WriterDirectSubject("orders.eu", 3, "n1") + ".x", false},
		{"every writer", semantics.WriterPrefix + ".>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := allowed(tc.subject); got != tc.want {
				t.Errorf("publish to %s allowed: %v, want %v (allow %v)", tc.subject, got, tc.want, sp.PublishAllow)
			}
		})
	}
}

// subjectMatches reports whether NATS subject pattern p (with * and >) matches
// subject s, a literal subject or, for ">" and "*" in s, a pattern covered by p.
func subjectMatches(p, s string) bool {
	pt, st := strings.Split(p, "."), strings.Split(s, ".")
	for i, tok := range pt {
		switch {
		case tok == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case tok == "*":
			if st[i] == ">" {
				return false
			}
		case tok != st[i]:
			return false
		}
	}
	return len(pt) == len(st)
}

func TestGrantValidate(t *testing.T) {
	t.Parallel()
	bad := []semantics.Grant{
		{Produce: []string{"orders-*"}},
		{Consume: []string{"a b"}},
		{Groups: []string{"team*"}},
		{Publish: []string{">"}},
		{Subscribe: []string{"qxd.t.>"}},
		{Publish: []string{"a.>.b"}},
	}
	for _, g := range bad {
		if err := g.Validate(); err == nil {
			t.Errorf("%+v validated", g)
		}
	}
	if err := (semantics.Grant{Produce: []string{"*", "orders"}, Publish: []string{"sensors.*.temp"}}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestSubjectSplits(t *testing.T) {
	t.Parallel()
	op, tok := semantics.SplitTopicAPISubject(semantics.TopicAPISubject(semantics.APITopicCreate, "a.b"))
	if op != semantics.APITopicCreate || semantics.DecodeTopic(tok) != "a.b" {
		t.Errorf("topic split: %s %s", op, tok)
	}
	op, tok = semantics.SplitGroupSubject(semantics.GroupSubject(semantics.GroupCommit, "g.1"))
	if op != semantics.GroupCommit || tok != semantics.EncodeGroupID("g.1") {
		t.Errorf("group split: %s %s", op, tok)
	}
	if op, tok := semantics.SplitTopicAPISubject(semantics.APITopicList); op != semantics.APITopicList || tok != "" {
		t.Errorf("list split: %s %s", op, tok)
	}
}

// FuzzGrantSubjects checks the mapping for any topic and group name: a valid
// name gives valid, single-token subjects that name it, and the mapping back from
// a denied subject finds the same name.
func FuzzGrantSubjects(f *testing.F) {
	f.Add("orders", "billing")
	f.Add("orders.eu-1", "team a/b")
	f.Add("..a", "=41")
	f.Fuzz(func(t *testing.T, topic, group string) {
		if semantics.ValidateTopicPattern(topic) != nil || topic == semantics.AllPattern {
			return
		}
		g := semantics.Grant{Produce: []string{topic}, Consume: []string{topic}, Admin: []string{topic}}
		if semantics.ValidateGroupPattern(group) == nil && group != semantics.AllPattern {
			g.Groups = []string{group}
			got, ok := semantics.GroupFromSubject(semantics.GroupSubject(semantics.GroupCommit, group))
			if !ok || got != group {
				t.Fatalf("group %q: mapped back to %q, %v", group, got, ok)
			}
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("valid names rejected: %v", err)
		}
		sp := g.Subjects("_INBOX_t_x", []semantics.TopicPerms{{Name: topic, ID: "id", Partitions: 2}})
		for _, s := range sp.PublishAllow {
			if strings.ContainsAny(s, " \t\r\n") || strings.Contains(s, "..") {
				t.Fatalf("subject %q is not valid", s)
			}
		}
		for _, s := range []string{
			semantics.WriterSubject(topic, 1),
			semantics.WriterDirectSubject(topic, 1, group),
			semantics.TopicAPISubject(semantics.APITopicDelete, topic),
			semantics.AuthzSubject(semantics.OpConsume, topic),
			"$JS.API.STREAM.INFO." + semantics.StreamName(topic, 1),
		} {
			if got, ok := semantics.TopicFromSubject(s); !ok || got != topic {
				t.Fatalf("%s: mapped back to %q, %v; want %q", s, got, ok, topic)
			}
		}
	})
}
