package server

import (
	"net"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A network cut shows in the kernel before it shows in the probes. Every
// message a node sends a peer over a route is a TCP segment the peer's kernel
// acknowledges as it arrives, whatever the peer's process does: a peer paused,
// or starved of CPU on a loaded machine, still acknowledges (until its receive
// window fills, which makes the sender probe the window, not retransmit). When
// the way between them is cut, nothing is acknowledged, and the sender's kernel
// retransmits after its retransmission timeout (200 ms at the least on Linux).
// So a route whose connection has data retransmitted and unacknowledged, while
// the peer has sent this node no message over any route for routeQuietAfter,
// is a route the network does not carry: not a slow peer, and not a slow
// machine, which the probes' silence alone cannot tell apart (their doubt waits
// doubtAfter, and longer after slow answers: up to 2 s on a loaded machine).
//
// watchRoutes looks at the routes every routeCheckEvery: a node whose routes to
// all but fewer than a majority of the cluster are so cut tells its clients to
// move at once (isolationWatch.cutByNetwork), about 0.2–0.4 s after the cut
// rather than 1–2 s. It changes nothing else: the node counts itself cut off,
// holds its RAFT groups and stops coordinating by its probes alone
// (isolatedAfter). The kernel's view is read from /proc/self/net/tcp{,6}
// (routeRetransmits; on systems without it there is no such evidence and the
// probes decide alone), and only while a majority of the peers have sent
// nothing for routeQuietAfter.
const (
	// routeCheckEvery is how often the watch looks at the routes.
	routeCheckEvery = 100 * time.Millisecond
	// routeQuietAfter is how long a peer must have sent no message over any
	// of its routes for the kernel's view of them to be read: about one
	// retransmission timeout.
	routeQuietAfter = 200 * time.Millisecond
)

// routeState is what a look at the routes found of one peer: how long it has
// sent no message over any of them, and whether the kernel retransmits
// unacknowledged data on one of them.
type routeState struct {
	quiet   time.Duration
	stalled bool
}

// routeLook keeps, between looks, each route's count of messages received and
// since when it has not changed.
type routeLook struct {
	in map[uint64]routeIn // by route id
}

type routeIn struct {
	msgs  int64
	since time.Time
}

// look returns each peer's routeState at at, from the routes of ns. retrans
// reads the kernel's view of the connections (routeRetransmits); it is called
// only when need says the quiet peers could decide (a majority quiet).
func (l *routeLook) look(ns *natsserver.Server, at time.Time, need func(quiet map[string]bool) bool,
	retrans func(remotes map[string]bool) map[string]bool) map[string]routeState {
	rz, err := ns.Routez(&natsserver.RoutezOptions{})
	if err != nil {
		return nil
	}
	if l.in == nil {
		l.in = map[uint64]routeIn{}
	}
	seen := make(map[uint64]bool, len(rz.Routes))
	out := map[string]routeState{}
	remotes := map[string]string{} // "ip:port" → peer
	for _, r := range rz.Routes {
		if r.RemoteName == "" {
			continue
		}
		seen[r.Rid] = true
		prev, ok := l.in[r.Rid]
		if !ok || prev.msgs != r.InMsgs {
			prev = routeIn{msgs: r.InMsgs, since: at}
			l.in[r.Rid] = prev
		}
		quiet := at.Sub(prev.since)
		if s, ok := out[r.RemoteName]; !ok || quiet < s.quiet {
			out[r.RemoteName] = routeState{quiet: quiet}
		}
		if r.IP != "" && r.Port > 0 {
			remotes[net.JoinHostPort(r.IP, strconv.Itoa(r.Port))] = r.RemoteName
		}
	}
	for rid := range l.in {
		if !seen[rid] {
			delete(l.in, rid)
		}
	}
	quiet := map[string]bool{}
	for peer, s := range out {
		if s.quiet >= routeQuietAfter {
			quiet[peer] = true
		}
	}
	if len(quiet) == 0 || !need(quiet) {
		return out
	}
	ask := map[string]bool{}
	for addr, peer := range remotes {
		if quiet[peer] {
			ask[addr] = true
		}
	}
	for addr := range retrans(ask) {
		if peer, ok := remotes[addr]; ok {
			s := out[peer]
			s.stalled = true
			out[peer] = s
		}
	}
	return out
}

// cutByNetwork reports whether at at the routes say the network cut this node
// from all but fewer than a majority of its cluster: a majority answered once,
// the node does not count itself cut off yet, it runs on time (a starved node
// hears late), and of the nodes it knows, too few are not cut by routes (a
// peer whose routes are quiet and stalled, see routeState; or one with no
// route left that has answered no probe for routeQuietAfter) for a majority,
// at least one of them stalled.
func (w *isolationWatch) cutByNetwork(at time.Time, routes map[string]routeState) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed || w.isolated || w.size < 3 || !w.runningLocked(at) {
		return false
	}
	known := map[string]bool{}
	for node := range w.heard {
		known[node] = true
	}
	for node := range w.routeSeen {
		known[node] = true
	}
	delete(known, w.self)
	reached, stalled := 0, false
	for node := range known {
		s, routed := routes[node]
		switch {
		case routed && s.stalled && s.quiet >= routeQuietAfter:
			stalled = true
		case !routed && at.Sub(w.heard[node]) >= routeQuietAfter:
		default:
			reached++
		}
	}
	return stalled && reached+1 < w.size/2+1
}

// mayLoseMajority says whether the peers in quiet, were they cut, would leave
// this node fewer than a majority of the cluster: only then is the kernel's
// view of their routes read.
func (w *isolationWatch) mayLoseMajority(quiet map[string]bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	others := 0
	for node := range w.heard {
		if node != w.self && !quiet[node] {
			others++
		}
	}
	return w.size >= 3 && others+1 < w.size/2+1
}
