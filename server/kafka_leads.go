package server

import (
	"encoding/json"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// A node woken from a pause learns who leads the partitions it led before it
// from its RAFT groups: the successor's next append or heartbeat names it.
// That waits for the routes (nats-server dials a lost route again after about
// a second) and then for the heartbeat (up to a second more), longer than a
// Metadata answer may wait (kafkaElectionWait). So the woken node also asks the
// other nodes which of those partitions they lead: they answer as soon as a
// route carries the question, and the leader's own word, at a term no older
// than the woken node's, names the partition's leader.

// kafkaLeadsAsk is how often a held Metadata answer of a woken node asks the
// other nodes again: a question published while no route is up reaches nobody.
const kafkaLeadsAsk = 100 * time.Millisecond

// leadsAnswer is a node's answer on semantics.KafkaLeadsSubject: the streams
// asked whose RAFT group it leads, with the group's term.
type leadsAnswer struct {
	Node  string           `json:"node"`
	Leads map[string]int32 `json:"leads"`
}

// leadClaim is a node's word that it leads a stream's group at a term.
type leadClaim struct {
	node string
	term int32
}

// serveLeads answers semantics.KafkaLeadsSubject with the streams asked that
// this node leads now.
func (b *kafkaBackend) serveLeads(m *nats.Msg) {
	var streams []string
	if json.Unmarshal(m.Data, &streams) != nil {
		return
	}
	out := leadsAnswer{Node: b.advertise.Name, Leads: map[string]int32{}}
	for _, s := range streams {
		if rn := b.raftNodeOf(s); rn != nil && rn.State() == natsserver.Leader {
			out.Leads[s] = raftTerm(rn)
		}
	}
	if len(out.Leads) == 0 {
		return
	}
	data, _ := json.Marshal(out)
	_ = m.Respond(data)
}

// raftNodeOf is the RAFT node of stream's group on this node, nil if it holds
// no replica it has found.
func (b *kafkaBackend) raftNodeOf(stream string) natsserver.RaftNode {
	g, ok := b.n.epochs.cached(stream)
	if !ok {
		g, ok = b.n.epochs.local(stream)
	}
	if !ok {
		return nil
	}
	return lookupRaftNode(b.n.ns, g.name)
}

func raftTerm(rn natsserver.RaftNode) int32 {
	return int32(min(rn.Term(), 1<<31-1))
}

// leadsAsker asks the other nodes, every kafkaLeadsAsk, which of its streams
// they lead, and keeps the answers.
type leadsAsker struct {
	b      *kafkaBackend
	sub    *nats.Subscription
	inbox  string
	req    []byte
	asked  time.Time
	claims map[string]leadClaim
}

// askLeads starts asking about streams; nil if it cannot subscribe for the
// answers.
func (b *kafkaBackend) askLeads(streams []string) *leadsAsker {
	inbox := nats.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return nil
	}
	req, _ := json.Marshal(streams)
	a := &leadsAsker{b: b, sub: sub, inbox: inbox, req: req, claims: map[string]leadClaim{}}
	a.poll(time.Now())
	return a
}

// poll takes in the answers come so far, and asks again if kafkaLeadsAsk has
// passed since the last question.
func (a *leadsAsker) poll(now time.Time) {
	for {
		m, err := a.sub.NextMsg(0)
		if err != nil {
			break
		}
		var ans leadsAnswer
		if json.Unmarshal(m.Data, &ans) != nil || ans.Node == "" || ans.Node == a.b.advertise.Name {
			continue
		}
		for s, term := range ans.Leads {
			if c, ok := a.claims[s]; !ok || term > c.term {
				a.claims[s] = leadClaim{node: ans.Node, term: term}
			}
		}
	}
	if now.Sub(a.asked) >= kafkaLeadsAsk {
		a.asked = now
		_ = a.b.nc.PublishRequest(semantics.KafkaLeadsSubject, a.inbox, a.req)
	}
}

// leader is the node that claimed to lead stream at a term no older than this
// node's own view of its group, if one did.
func (a *leadsAsker) leader(stream string) (leadClaim, bool) {
	c, ok := a.claims[stream]
	if !ok {
		return leadClaim{}, false
	}
	if rn := a.b.raftNodeOf(stream); rn != nil && raftTerm(rn) > c.term {
		return leadClaim{}, false
	}
	return c, true
}

func (a *leadsAsker) close() {
	_ = a.sub.Unsubscribe()
}
