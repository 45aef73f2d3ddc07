package server

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// A node cut off from its cluster — it cannot reach a majority of the cluster's
// nodes — can store nothing: every RAFT group it leads has lost its quorum and its
// JetStream API has no meta leader. Yet its clients' connections still work and it
// answers their pings, so nothing tells them to go, and their requests time out
// until the cut heals. JetStream's own signals come late: a leader steps down only
// after its RAFT checks for a lost quorum (every 10 s, for a quorum unheard for 10
// s), a follower campaigns after its election timeout (4–9 s).
//
// So the node asks the other nodes every probeEvery to answer
// semantics.NodeInfoSubject, and counts itself cut off while fewer than a majority
// of the cluster (itself included) have answered within the last isolatedAfter.
// While cut off:
//
//   - it tells each of its clients once to move to another node (NATS's lame-duck
//     notice, sent to that connection alone; the SDK moves when its server list
//     holds a node that has not told it so lately, and stays otherwise, so that
//     a whole cluster without a majority does not make clients go round). A
//     client that connects during the cut is told once too. In-process
//     connections (the node's own services, an embedder's) cannot move and are
//     left alone;
//   - it stops coordinating groups and transactions (coordinatorLeadership): a
//     coordinator that cannot store anything must not grant sessions while the
//     majority elects another;
//   - its Kafka listener closes its connections and refuses new ones
//     (kafkaCutOff): Kafka clients have no lame-duck notice, but take a refused
//     connection for a broker that is down and read the metadata again from
//     another;
//   - its RAFT groups do not campaign (raftHold, isolation_raft.go): each
//     campaign would raise their terms, and back, they would make the leaders
//     on the healthy nodes step down.
//
// The first it does already while it doubts it reaches a majority (doubtful: no
// other node has answered its probes for doubtAfter, 1 s, though they went out
// on time), so that its clients leave about as soon as they leave a paused node,
// whose silence they find themselves (client_health.go), rather than 2–3 s after
// the cut; sooner still when its routes show the cut in TCP (isolation_tcp.go:
// the routes to a majority carry nothing and the kernel retransmits on them
// unacknowledged, 0.2–0.4 s after the cut). A node whose probes were answered slowly lately (a loaded machine)
// doubts later: after twice the slowest answer of the last slowProbeWindow, up
// to maxDoubtWait, as a client waits longer for a node whose answers were slow. Should answers come again before it counts itself cut off, the clients
// that moved stay where they are, on healthy nodes.
//
// It accepts NATS clients all along; once a majority answers again it is a node
// like the others, its RAFT groups free to campaign and its Kafka listener
// serving again.
const (
	probeEvery    = 500 * time.Millisecond
	isolatedAfter = 2500 * time.Millisecond
	// startCutOffAfter is how long a node of a cluster of three nodes or more
	// waits, from its first probe, for a majority to answer before it counts
	// itself cut off although none ever did: it started cut off. The other
	// nodes of a cluster that is forming answer once their own services run,
	// seconds after this node's.
	startCutOffAfter = 4 * isolatedAfter
	// lateCheck: a check that comes this long after the one before it finds
	// that the node itself did not run on time (it was paused, or starved of
	// CPU), so the silence since says nothing of the other nodes: their answers
	// may wait unread, and its own probes were not sent. Such a node does not
	// count itself cut off until isolatedAfter of checks on time have passed.
	lateCheck = 4 * probeEvery
)

// isolationWatch decides from the nodes' answers whether this node is cut off.
// It counts the node cut off once a majority has answered and no longer does, or,
// in a cluster of three nodes or more, when no majority has answered within
// startCutOffAfter of its first check: the other nodes of a cluster that is
// starting answer only once their own services run, which can be seconds after
// this node's. A single node or a pair is never cut off from the start.
type isolationWatch struct {
	self string

	mu       sync.Mutex
	heard    map[string]time.Time // node → when it last answered
	first    time.Time            // the first check
	armed    bool                 // a majority answered once
	isolated bool
	// last is the previous check; lateAfter is the gap after it that makes a
	// check late (lateCheck; 0: never), and lateUntil is when the last late
	// check stops holding the node from counting itself cut off.
	last, lateUntil time.Time
	lateAfter       time.Duration
	// majoritySince is when checks began to find a majority, each since then; a
	// node cut off counts itself back after isolatedAfter of them, not at the
	// first answers after a heal: routes that come back are often replaced
	// within seconds, and the answers stop meanwhile.
	majoritySince time.Time
	// onTimeSince is when the checks, and so the probes, began to come on time
	// (each within probeLate of the one before): a node whose probes went out
	// on time since and got no answer from another node knows that node is
	// silent, not itself (the election watch, raft_campaign.go).
	onTimeSince time.Time
	// size is the cluster's size at the last check, itself included.
	size int
	// routeSeen is when this node last saw a route to each other node;
	// ran is when the node last ran (alive), and routesSince when it last ran
	// after a gap of pauseClosesRoutes or more (routesLost).
	routeSeen        map[string]time.Time
	ran, routesSince time.Time
	// ticked is when the ticker last called alive, and tickedOnTimeSince
	// when its calls began to come each within probeLate of the one before:
	// a node starved of CPU, or paused, is not running (running), and what it
	// does not hear says nothing of the others.
	ticked, tickedOnTimeSince time.Time
	// reports is what each other node said of the nodes it reaches in its
	// last answer (semantics.BrokerInfo.Reaches).
	reports map[string]peerReport
	// nudge asks watchIsolation for a probe now, between two ticks
	// (probeSoon).
	nudge chan struct{}
	// slowest is the slowest answer to a probe since slowSince (roundTrip).
	slowest   time.Duration
	slowSince time.Time
	// lastAnswer is when each other node's last answer to a probe came, and
	// burstFrom when its first answer after a silence of isolatedAfter or more
	// came (roundTrip): answers to probes sent before that are the ones it
	// missed while paused or cut off.
	lastAnswer, burstFrom map[string]time.Time
	// probeHeard is, for each other node, when the newest probe it answered
	// went out, and selfProbe when the newest probe this node answered itself
	// went out (probeAnswered): the doubt counts the others' silence in
	// probes that went through this node's own messaging, not in time alone.
	probeHeard map[string]time.Time
	selfProbe  time.Time
}

// peerReport is what one node's last answer said of the nodes it reaches:
// when this node got it, and when that node last heard each node it has a
// route to, on this node's clock.
type peerReport struct {
	at    time.Time
	heard map[string]time.Time
}

// preVoteHeard is how recently another node must have heard a node that this
// one does not hear for the election watch to count that node alive, only cut
// from this one (the pre-vote, raft_campaign.go): the other's probes go out
// every probeEvery and its answer reaches this node up to probeEvery later,
// so a node it hears is one it heard within about 2*probeEvery; this is one
// probeEvery less than silentAfter, so that a node paused or killed, whose
// silence every node counts from about the same moment, is counted silent
// here no later than before.
const preVoteHeard = silentAfter - probeEvery

// pauseClosesRoutes is the gap between two checks from which the node may have
// been paused long enough for the other nodes to close their routes to it:
// they close a route after maxPingsOut route pings go unanswered, one every
// routePingInterval (6 s at the least); this is half that. A gap of a second
// or two under load (a late check) says the node ran slowly, not that its
// routes were closed by its peers.
const pauseClosesRoutes = routePingInterval * maxPingsOut / 2

// doubtAfter is how long a node whose probes went out on time has heard from
// fewer than a majority before it doubts its view (isolationWatch.doubtful): two
// probes unanswered, where it counts itself cut off after isolatedAfter.
const doubtAfter = 2 * probeEvery

// slowProbeWindow is how long the slowest answer to a probe counts for the
// doubt (doubtWaitLocked).
const slowProbeWindow = 30 * time.Second

// maxDoubtWait bounds the doubt's wait: a probe's tick before the node counts
// itself cut off, so that its clients still leave before it stops
// coordinating.
const maxDoubtWait = isolatedAfter - probeEvery

// probeLate is the gap between two checks past which the node counts its own
// probes late: each check follows a probe by probeEvery, and two missed ticks
// mean the node itself did not run (paused, starved of CPU).
const probeLate = 2 * probeEvery

func newIsolationWatch(self string) *isolationWatch {
	return &isolationWatch{self: self, heard: map[string]time.Time{}, routeSeen: map[string]time.Time{}, lateAfter: lateCheck,
		reports: map[string]peerReport{}, nudge: make(chan struct{}, 1), probeHeard: map[string]time.Time{}}
}

// reported records that node answered at at, saying it reaches the nodes in
// reaches (semantics.BrokerInfo.Reaches: milliseconds since it heard each).
func (w *isolationWatch) reported(node string, at time.Time, reaches map[string]int64) {
	if node == "" || node == w.self {
		return
	}
	heard := make(map[string]time.Time, len(reaches))
	for name, ms := range reaches {
		if ms >= 0 {
			heard[name] = at.Add(-time.Duration(ms) * time.Millisecond)
		}
	}
	w.mu.Lock()
	if at.After(w.reports[node].at) {
		w.reports[node] = peerReport{at: at, heard: heard}
	}
	w.mu.Unlock()
	w.answered(node, at)
}

// reaches is what this node's answers say of the nodes it reaches: each node
// in routed (server names it has a route to now) that answered its probes
// once, with how many milliseconds before at it last did.
func (w *isolationWatch) reaches(at time.Time, routed map[string]bool) map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int64{}
	for node := range routed {
		if t, ok := w.heard[node]; ok && node != w.self {
			out[node] = max(0, at.Sub(t).Milliseconds())
		}
	}
	return out
}

// probeSoon asks for a probe now rather than at the next tick: the election
// watch saw a route close, and what the other nodes reach now decides
// whether it may campaign (heardElsewhere).
func (w *isolationWatch) probeSoon() {
	select {
	case w.nudge <- struct{}{}:
	default:
	}
}

// cutFrom returns a node that has answered none of this node's probes for
// silentAfter, while they went out on time, but that another node, one that
// answered this node within answeredWithin, heard after this node last did and
// within preVoteHeard: both run, and only the way between them is cut. ""
// when there is none.
func (w *isolationWatch) cutFrom(at time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.isolated || w.onTimeSince.IsZero() || at.Sub(w.onTimeSince) < silentAfter || !w.runningLocked(at) {
		return ""
	}
	for node, mine := range w.heard {
		if at.Sub(mine) < silentAfter {
			continue
		}
		for other, r := range w.reports {
			if other == node || at.Sub(r.at) >= answeredWithin {
				continue
			}
			if h, ok := r.heard[node]; ok && h.After(mine) && at.Sub(h) < preVoteHeard {
				return node
			}
		}
	}
	return ""
}

// probeAnswered records that node (this one too) answered the probe that went
// out at sent.
func (w *isolationWatch) probeAnswered(node string, sent time.Time) {
	if node == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if node == w.self {
		if sent.After(w.selfProbe) {
			w.selfProbe = sent
		}
		return
	}
	if sent.After(w.probeHeard[node]) {
		w.probeHeard[node] = sent
	}
}

// roundTrip records that node's answer to a probe came d after the probe went
// out, at at. The answers a node that was paused or cut off sends when it comes
// back — to the probes it missed, all at once — say nothing of how slow it is,
// and are not counted: an answer isolatedAfter late or later, and any answer to
// a probe sent before the node's first answer after a silence of isolatedAfter
// or more (a node woken from a 15 s pause answers the probes of its last 2.5 s
// too, late by up to 2.5 s, and they made the doubt wait its bound for
// slowProbeWindow). A node on a loaded machine answers late but steadily, and
// its answers count.
func (w *isolationWatch) roundTrip(node string, d time.Duration, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastAnswer == nil {
		w.lastAnswer, w.burstFrom = map[string]time.Time{}, map[string]time.Time{}
	}
	if prev, ok := w.lastAnswer[node]; ok && at.Sub(prev) >= isolatedAfter {
		w.burstFrom[node] = at
	}
	w.lastAnswer[node] = at
	if d >= isolatedAfter || at.Add(-d).Before(w.burstFrom[node]) {
		return
	}
	if at.Sub(w.slowSince) < slowProbeWindow && d <= w.slowest {
		return
	}
	w.slowest, w.slowSince = d, at
}

// doubtWaitLocked is how long at at the node hears from fewer than a majority
// before it doubts its view: doubtAfter, or twice the slowest answer to a
// probe of the last slowProbeWindow when that is longer (a node on a loaded
// machine, whose peers answered it a second late lately, goes that long
// without answers and is not cut off), and at most maxDoubtWait. Called with
// mu held.
func (w *isolationWatch) doubtWaitLocked(at time.Time) time.Duration {
	d := doubtAfter
	if at.Sub(w.slowSince) < slowProbeWindow {
		d = max(d, 2*w.slowest)
	}
	return min(d, maxDoubtWait)
}

// answered records that node answered at at.
func (w *isolationWatch) answered(node string, at time.Time) {
	if node == "" || node == w.self {
		return
	}
	w.mu.Lock()
	if at.After(w.heard[node]) {
		w.heard[node] = at
	}
	w.mu.Unlock()
}

// check says at at whether the node is cut off from a cluster of size nodes
// (itself included), whether that changed since the last check, and how many other
// nodes answered within isolatedAfter.
func (w *isolationWatch) check(at time.Time, size int) (isolated, changed bool, reached int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first.IsZero() {
		w.first = at
	}
	if w.lateAfter > 0 && !w.last.IsZero() && at.Sub(w.last) >= w.lateAfter {
		w.lateUntil = at.Add(isolatedAfter)
	}
	if w.last.IsZero() || at.Sub(w.last) >= probeLate {
		w.onTimeSince = at
	}
	w.aliveLocked(at)
	w.last, w.size = at, size
	for _, t := range w.heard {
		if at.Sub(t) < isolatedAfter {
			reached++
		}
	}
	majority := reached+1 >= size/2+1
	w.armed = w.armed || majority
	switch {
	case !majority:
		w.majoritySince = time.Time{}
	case w.majoritySince.IsZero():
		w.majoritySince = at
	}
	startedCut := !w.armed && size >= 3 && at.Sub(w.first) >= startCutOffAfter
	now := (w.armed || startedCut) && (!majority || w.isolated && at.Sub(w.majoritySince) < isolatedAfter)
	if now && !w.isolated && at.Before(w.lateUntil) {
		now = false // the node did not run on time: see lateCheck
	}
	changed, w.isolated = now != w.isolated, now
	return now, changed, reached
}

// alive records that the node ran at at. watchIsolation calls it every
// probeEvery from a goroutine that does nothing else, so a gap between two
// calls means the whole process stood still (paused), not that one of the
// watch's checks waited on a slow call: the check loop can wait seconds on
// JetStream while a peer shuts down, and a gap in the checks reset routesSince
// just as that peer's route closed, so it never counted lost.
func (w *isolationWatch) alive(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ticked.IsZero() || at.Sub(w.ticked) >= probeLate {
		w.tickedOnTimeSince = at
	}
	if at.After(w.ticked) {
		w.ticked = at
	}
	w.aliveLocked(at)
}

// runningLocked reports whether at at the ticker has called alive on time
// (each call within probeLate of the one before) for silentAfter, and its
// last call is not late: the node was neither paused nor starved of CPU
// lately. A loaded node answers late, and hears the others' answers late;
// the pre-vote's hold and the move of clients off a node cut from one peer
// act only on a node that runs.
func (w *isolationWatch) runningLocked(at time.Time) bool {
	return !w.tickedOnTimeSince.IsZero() && at.Sub(w.tickedOnTimeSince) >= silentAfter && at.Sub(w.ticked) < probeLate
}

func (w *isolationWatch) aliveLocked(at time.Time) {
	if w.ran.IsZero() || at.Sub(w.ran) >= pauseClosesRoutes {
		w.routesSince = at
	}
	if at.After(w.ran) {
		w.ran = at
	}
}

// reachable returns the nodes that answered within isolatedAfter of at.
func (w *isolationWatch) reachable(at time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for node, t := range w.heard {
		if at.Sub(t) < isolatedAfter {
			out = append(out, node)
		}
	}
	return out
}

// isArmed reports whether a majority has answered once.
func (w *isolationWatch) isArmed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.armed
}

// probed is what the probes say at at for the election watch: when each other
// node last answered, by its RAFT peer id (raftPeerID of its server name), and
// whether the probes have gone out on time for at least silentAfter up to at:
// only then does a node's silence say something of that node rather than of
// this one. (Should the probes stall later, the others' answers grow old too.)
func (w *isolationWatch) probed(at time.Time) probeView {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := probeView{
		heard:   make(map[string]time.Time, len(w.heard)),
		reports: make(map[string]peerReport, len(w.reports)),
		onTime:  !w.onTimeSince.IsZero() && at.Sub(w.onTimeSince) >= silentAfter,
		running: w.runningLocked(at),
		cutOff:  w.isolated,
	}
	for node, t := range w.heard {
		v.heard[raftPeerID(node)] = t
	}
	for node, r := range w.reports {
		heard := make(map[string]time.Time, len(r.heard))
		for other, t := range r.heard {
			heard[raftPeerID(other)] = t
		}
		v.reports[raftPeerID(node)] = peerReport{at: r.at, heard: heard}
	}
	return v
}

// doubtful reports whether at at the node may be cut off and does not know yet:
// a majority answered it once, it does not count itself cut off, its probes
// went out on time for the doubt's wait (doubtWaitLocked: doubtAfter, longer
// after slow answers), the node itself runs on time (its alive ticker: a
// starved process hears its peers' answers late, which is not a cut), and
// fewer than a majority of the cluster answered any within that wait, nor any
// probe that went out within that wait before the newest probe the node has
// answered itself. The latter counts the silence on the clock of the node's own
// messaging: a node on a loaded machine answered its own probes 0.4–0.8 s late
// (-race, three busy loops beside) while its ticker ran on time, and heard its
// peers late by as much; a node cut off answers its own probes at once.
// Unless answers come again, it counts itself cut off once isolatedAfter has
// passed.
func (w *isolationWatch) doubtful(at time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wait := w.doubtWaitLocked(at)
	if !w.armed || w.isolated || w.size < 3 || w.onTimeSince.IsZero() || at.Sub(w.onTimeSince) < wait || !w.runningLocked(at) {
		return false
	}
	reached := 0
	for node, t := range w.heard {
		if at.Sub(t) < wait || !w.selfProbe.IsZero() && w.selfProbe.Sub(w.probeHeard[node]) < wait {
			reached++
		}
	}
	return reached+1 < w.size/2+1
}

// silent reports whether node, which answered this node's probes once, has
// answered none for silentAfter up to at while the probes went out on time: the
// node the election watch counts silent (case (c), raft_campaign.go), whose RAFT
// groups' followers elect new leaders now.
func (w *isolationWatch) silent(node string, at time.Time) bool {
	return w.quiet(node, at, silentAfter)
}

// quiet reports whether node, which answered this node's probes once, has
// answered none for d up to at while the probes went out on time for d, and
// this node does not count itself cut off.
func (w *isolationWatch) quiet(node string, at time.Time, d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	heard, ok := w.heard[node]
	return ok && !w.isolated && at.Sub(heard) >= d &&
		!w.onTimeSince.IsZero() && at.Sub(w.onTimeSince) >= d
}

// routesLost records that at at this node has routes to the nodes in routed,
// and returns the nodes it saw a route to since it last ran after a gap of
// pauseClosesRoutes (alive) and has none to now: routes that closed while this
// node ran (a killed node's close within milliseconds), also while it ran
// slowly (checks seconds late under load, or waiting on JetStream). A route
// that closed while this node was paused is not one: the other nodes close
// their routes to a paused node, and it finds them gone when it wakes, before
// they are made again; that node is judged by its probes (quiet). Nor is one
// while the node counts itself cut off.
func (w *isolationWatch) routesLost(routed map[string]bool, at time.Time) map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for node := range routed {
		if node != w.self && at.After(w.routeSeen[node]) {
			w.routeSeen[node] = at
		}
	}
	w.aliveLocked(at) // a woken node may answer a Metadata request before its ticker runs
	if w.isolated {
		return nil
	}
	var lost map[string]bool
	for node, seen := range w.routeSeen {
		if !routed[node] && seen.After(w.routesSince) {
			if lost == nil {
				lost = map[string]bool{}
			}
			lost[node] = true
		}
	}
	return lost
}

// nodes returns the nodes that answered this node's probes once or that this
// node saw a route to: a node killed before its first answer arrived (a cluster
// just started, or under load) is known by its route alone.
func (w *isolationWatch) nodes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.heard))
	for node := range w.heard {
		out = append(out, node)
	}
	for node := range w.routeSeen {
		if _, ok := w.heard[node]; !ok {
			out = append(out, node)
		}
	}
	return out
}

// watchIsolation probes the other nodes every probeEvery with w until ctx
// ends, keeps n.isolated and sends clients away while the node is cut off. The
// upkeep owns it.
func (n *Node) watchIsolation(ctx context.Context, w *isolationWatch) {
	// Each probe has its own reply subject, inbox.<n>, so that an answer
	// says how long it took (roundTrip).
	inbox := nats.NewInbox()
	probes := &probeTimes{}
	sub, err := n.nc.Subscribe(inbox+".*", func(m *nats.Msg) {
		var b semantics.BrokerInfo
		if json.Unmarshal(m.Data, &b) != nil {
			return
		}
		at := time.Now()
		if sent, ok := probes.sentAt(m.Subject[len(inbox)+1:]); ok {
			w.probeAnswered(b.Name, sent)
			if b.Name != "" && b.Name != w.self {
				w.roundTrip(b.Name, at.Sub(sent), at)
			}
		}
		w.reported(b.Name, at, b.Reaches)
	})
	if err != nil {
		n.log.Warn("cannot watch for a cut from the cluster: clients of this node will not be sent away while it is cut off", "err", err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	defer n.isolated.Store(false)
	defer n.cutPeer.Store(nil)
	go everyTick(ctx, probeEvery, func() bool { w.alive(time.Now()); return true })
	told := map[uint64]bool{}
	armed := false
	hold := newRaftHold(n.ns)
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	rt := time.NewTicker(routeCheckEvery)
	defer rt.Stop()
	var routes routeLook
	var netCut time.Time // when the routes last said the network cut the node off
	for {
		_ = n.nc.PublishRequest(semantics.NodeInfoSubject, inbox+"."+probes.next(), nil)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return
			case <-w.nudge:
				_ = n.nc.PublishRequest(semantics.NodeInfoSubject, inbox+"."+probes.next(), nil)
			case <-rt.C:
				now := time.Now()
				if !w.cutByNetwork(now, routes.look(n.ns, now, w.mayLoseMajority, routeRetransmits)) {
					continue
				}
				netCut = now
				if sent := n.sendClientsAway(told); sent > 0 {
					n.log.Info("told clients to move to another node: the routes to a majority of the cluster carry nothing, and the kernel retransmits on them unacknowledged", "clients", sent)
				}
			case <-t.C:
				waiting = false
			}
		}
		size := n.clusterSize()
		isolated, changed, reached := w.check(time.Now(), max(size, n.configuredNodes))
		w.routesLost(routedServers(n.ns), time.Now()) // keeps routeSeen current between Metadata requests
		if !armed && w.isArmed() {
			armed = true
			n.log.Info("a majority of the cluster answers this node: should it be cut off, it will send its clients to other nodes",
				"reached", reached, "nodes", max(size, n.configuredNodes))
		}
		if changed {
			n.isolated.Store(isolated)
			if isolated {
				n.log.Warn("node is cut off from its cluster: fewer than a majority of the nodes answer; sending its clients to other nodes and not coordinating groups",
					"reached", reached, "nodes", max(size, n.configuredNodes))
			} else {
				n.log.Info("node reaches a majority of its cluster again", "reached", reached)
				clear(told)
			}
		}
		n.holdRaft(hold, isolated, max(size, n.configuredNodes), w.reachable(time.Now()))
		n.kafkaCutOff(isolated)
		cut := w.cutFrom(time.Now())
		if cut != "" && !raftUnheardFrom(n.ns, raftPeerID(cut), time.Now()) {
			cut = ""
		}
		if isolated {
			n.cutPeer.Store(nil)
		} else {
			n.cutPeer.Store(&cut)
		}
		switch {
		case isolated:
			if sent := n.sendClientsAway(told); sent > 0 {
				n.log.Info("told clients to move to another node: this node is cut off from its cluster", "clients", sent)
			}
		case w.doubtful(time.Now()):
			if sent := n.sendClientsAway(told); sent > 0 {
				n.log.Info("told clients to move to another node: no other node has answered this one for a second", "clients", sent)
			}
		case cut != "":
			// A node that answers the others but not this one, whose RAFT
			// traffic this node does not hear either, while this node runs
			// on time: the way between the two is cut, and NATS routes do
			// not relay, so this node's clients reach none of that node's
			// services (its partitions' writers, the group coordinator it
			// may run). The node the others reach both through serves them
			// all.
			if sent := n.sendClientsAway(told); sent > 0 {
				n.log.Info("told clients to move to another node: a node that answers the others has answered neither this one's probes nor its RAFT groups for 2 s", "clients", sent, "unanswered", cut)
			}
		case time.Since(netCut) < isolatedAfter:
			// The routes said the network cut the node off lately; the
			// probes' doubt comes later.
		case len(told) > 0:
			// The doubt passed without a cut: a client that stayed, or came
			// back, is told again at the next doubt.
			clear(told)
		}
	}
}

// probeTimes remembers when the last probes went out, by their reply token.
type probeTimes struct {
	mu   sync.Mutex
	seq  uint64
	sent [16]time.Time // probe n at sent[n%16]
}

// next numbers a probe going out now and returns its token.
func (p *probeTimes) next() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	p.sent[p.seq%uint64(len(p.sent))] = time.Now()
	return strconv.FormatUint(p.seq, 10)
}

// sentAt returns when the probe of token went out; false for one too old to be
// remembered.
func (p *probeTimes) sentAt(token string) (time.Time, bool) {
	n, err := strconv.ParseUint(token, 10, 64)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || n == 0 || n > p.seq || p.seq-n >= uint64(len(p.sent)) {
		return time.Time{}, false
	}
	return p.sent[n%uint64(len(p.sent))], true
}

// sendClientsAway sends NATS's lame-duck notice to each client connection of the
// node that told does not hold yet, and returns how many it told. In-process
// connections (no address) are left alone: they cannot move. told keeps only
// connections that are still open.
func (n *Node) sendClientsAway(told map[uint64]bool) int {
	sent := 0
	open := map[uint64]bool{}
	for offset := 0; ; {
		cz, err := n.ns.Connz(&natsserver.ConnzOptions{Offset: offset, Limit: 1024})
		if err != nil || len(cz.Conns) == 0 {
			break
		}
		for _, c := range cz.Conns {
			if c.IP == "" {
				continue
			}
			open[c.Cid] = true
			if told[c.Cid] {
				continue
			}
			// A connection that has not finished its handshake cannot take the
			// notice yet: it is told at the next probe.
			if n.ns.LDMClientByID(c.Cid) == nil {
				told[c.Cid] = true
				sent++
			}
		}
		offset += len(cz.Conns)
		if offset >= cz.Total {
			break
		}
	}
	for cid := range told {
		if !open[cid] {
			delete(told, cid)
		}
	}
	return sent
}

// coordinatorLeadership is stream leadership as the group and transaction
// coordinators take it: a node cut off from its cluster does not lead, although
// JetStream says it does until its RAFT notices the lost quorum (up to 20 s
// later). Its coordinator would go on granting sessions and taking commits it can
// no longer store while the majority elects another.
type coordinatorLeadership struct{ n *Node }

var _ streamLeadership = coordinatorLeadership{}

func (l coordinatorLeadership) isStreamLeader(stream string) bool {
	return !l.n.isolated.Load() && l.n.isStreamLeader(stream)
}

// holdRaft keeps the node's RAFT groups from campaigning while it is cut off from
// a cluster of size nodes, and lets them campaign again once it is back or routes
// to a majority have connected since (isolation_raft.go).
func (n *Node) holdRaft(h *raftHold, isolated bool, size int, reachable []string) {
	switch {
	case !isolated:
		h.done()
		if h.holding() {
			released, campaigned := h.release()
			n.log.Info("raft groups free to campaign again: the node reaches a majority of its cluster", "groups", released, "campaigning", campaigned)
		}
	case h.rejoined(size):
		if h.holding() {
			released, campaigned := h.release()
			n.log.Info("raft groups free to campaign again: routes to a majority of the cluster connected since the node was cut off", "groups", released, "campaigning", campaigned)
		}
	default:
		if put := h.hold(reachable); put > 0 {
			n.log.Info("raft groups held from campaigning while the node is cut off", "groups", put)
		}
	}
}
