package qxd

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A node can fail its clients without closing their connections: a paused
// process (SIGSTOP, a VM frozen, a swap storm) keeps its sockets open and answers
// nothing. NATS's pings find it after PingInterval × (MaxPingsOut + 1) (2–3 s by
// default). A client notices sooner: anything it awaits from its node that has not
// come within stallCheckAfter makes it ping its node at once, and move to another
// when nothing at all — neither the PONG nor any other message — comes from the
// node within the check's wait. One check serves the whole connection; what it
// awaits is a producer's batch (the partition's sender looks at its batches in
// flight), a request of the admin API or of a consumer group (heartbeats, joins,
// commits: Client.requestWatched), and a partition read's next batch while its
// stream holds more than the read got (a stallTimer per read).
//
// The wait follows what the client has seen of this node on this connection, as
// TCP's retransmission timeout follows the round trips it measures: it is
// nodeCheckWait (1 s, about 1.3 s after the stall began), or twice the slowest
// answer of the last slowWindow when that is longer (a produce answer or a check's
// PONG: a loaded node, whose answers took a second lately, may go a second
// without sending anything and still be healthy), and never more than
// maxCheckWait. A reconnection starts afresh: what a slow node taught says
// nothing of the next. The slowest answer is the measure rather than a smoothed
// mean and variance as TCP keeps: a producer takes hundreds of answers a second,
// and a mean over them forgets a one-second stall within a few hundred
// milliseconds, where the machine that starved the node once does it again.
//
// A silence alone cannot tell a paused node from a machine or network too busy
// to deliver, so the 1 s is long. A comparison can: when the node has sent
// nothing for probeAfter (0.1 s) into a check, the client probes another node
// of its pool over a connection of its own, opened then with the client's
// options (credentials, TLS, dialer) and closed once it answered: the dial, the
// handshake and a ping. If that node answers and the client's own node goes on
// sending nothing for silenceRoundTrips (3) times the probe's whole round trip,
// at least silenceFloor (0.45 s) since the check began, and at least what the
// node's slow answers taught (above), the node is silent while the machine and
// the network are not, and the client moves at once: about 0.75 s after the
// stall began, not 1.3 s. A node that is merely loaded still sends answers (its
// own late ones, or others'), and each one ends the check; a busy machine slows
// the probe too, which makes the wait longer. The floor is not lower because a
// link whose answers suddenly take 0.6 s (TestSilenceWaitFollowsTheConnection's
// first step) must still be found alive by a check begun 0.3 s into the wait.
// No probe is made when the pool holds no other server, or when the node's slow
// answers already set the wait; one that fails (a connect timeout, a refused
// handshake) leaves the check to wait as long as it would alone. A node the
// client left lately is probed only when every other one was (see
// probeTarget); steady
// state opens no connection, and a check that finds its node sending within
// 0.1 s opens none either.
//
// A node cut off from its peers is not found so: it answers pings. It tells its
// clients to move itself: once its routes to a majority carry nothing and the
// kernel retransmits on them unacknowledged (0.3–0.5 s after a cut on Linux), or
// once no other node has answered it for a second (see the server's isolation
// watch, whose doubt waits longer when its peers' answers were slow lately);
// the probe above does not shorten that, as the cut node still sends. A check
// of the cluster from the client (asking every node to answer through the
// client's node, and leaving when fewer than a majority do) was tried: on a busy machine the answers of healthy nodes came
// later than 1 s too often, twice in a row, and clients moved off healthy nodes.
const (
	// stallCheckAfter is how long a request (or a read's next batch) waits for
	// its answer before the client checks its node. A healthy node under load often answers later:
	// that costs one ping, not a move.
	stallCheckAfter = 300 * time.Millisecond
	// nodeCheckWait is how long a check waits for the PONG, or for anything else
	// from the node. A busy node answers the ping late (it comes behind
	// everything the client sent before it) but goes on sending answers; a
	// paused one sends nothing.
	nodeCheckWait = time.Second
	// nodeCheckEvery spaces the checks: one at a time, and the next at least this
	// long after the last one began.
	nodeCheckEvery = 500 * time.Millisecond
	// A node whose answers took long lately gets longer: a check waits twice the
	// slowest answer (a produce answer or a PONG) of the last slowWindow on this
	// connection, up to maxCheckWait, so that a paused node is still left within
	// a few seconds when ClientPing is set longer than the default. (The
	// default pings find a paused node in 2–3 s whatever the check waits.)
	slowWindow   = 30 * time.Second
	maxCheckWait = 3 * time.Second
)

// nodeCheck checks the client's node when a request stalls (suspect) and moves
// the connection to another node when the node sends nothing.
type nodeCheck struct {
	nc    *nats.Conn
	log   *slog.Logger
	watch *connWatch // decides whether a move is worth it (see moves)
	given []string   // the server URLs given to Connect (with their user info)
	dial  []nats.Option

	mu      sync.Mutex
	running bool
	pending bool      // a request stalled while a check ran or too soon after one
	last    time.Time // when the last check began
	closed  bool
	stop    chan struct{} // closed by close: a check running ends
	wg      sync.WaitGroup

	slowMu    sync.Mutex
	slowest   time.Duration // the slowest answer seen since slowSince
	slowSince time.Time
	connSince time.Time // the connection's start: answers to what was sent before are not counted
}

// answered records that an answer from the node took took. Cheap for answers
// under nodeCheckWait/2, which change nothing. An answer to what was sent
// before the connection's last reconnection is not counted. Safe on nil.
func (k *nodeCheck) answered(took time.Duration) {
	if k == nil || took < nodeCheckWait/2 {
		return
	}
	now := time.Now()
	k.slowMu.Lock()
	defer k.slowMu.Unlock()
	if now.Add(-took).Before(k.connSince) {
		return
	}
	if now.Sub(k.slowSince) < slowWindow && took <= k.slowest {
		return
	}
	k.slowest, k.slowSince = took, now
}

// reconnected forgets what the node of the connection before taught: the
// client has a new connection, most often to another node. Safe on nil.
func (k *nodeCheck) reconnected() {
	if k == nil {
		return
	}
	k.slowMu.Lock()
	defer k.slowMu.Unlock()
	k.slowest, k.slowSince, k.connSince = 0, time.Time{}, time.Now()
}

// wait is how long a check waits for anything from the node; learned is the
// part of it the node's slow answers set (twice the slowest of the last
// slowWindow, up to maxCheckWait; 0 when none was slow).
func (k *nodeCheck) wait() (wait, learned time.Duration) {
	k.slowMu.Lock()
	defer k.slowMu.Unlock()
	if time.Since(k.slowSince) < slowWindow {
		learned = min(2*k.slowest, maxCheckWait)
	}
	return max(nodeCheckWait, learned), learned
}

// awaiting tells the check that the client awaits an answer from its node: the
// node is checked when done has not been called within stallCheckAfter. Safe on
// nil; done may be called more than once.
func (k *nodeCheck) awaiting() (done func()) {
	if k == nil {
		return func() {}
	}
	t := time.AfterFunc(stallCheckAfter, k.suspect)
	return func() { t.Stop() }
}

// stallTimer is awaiting for something awaited again and again (a read's next
// batch): arm it when the client starts waiting, disarm it when what it awaited
// came or nothing is awaited any more. The zero value (and nil) does nothing.
type stallTimer struct {
	t *time.Timer
}

// stallTimer returns a disarmed stallTimer of the check (one that does nothing
// on nil).
func (k *nodeCheck) stallTimer() *stallTimer {
	if k == nil {
		return nil
	}
	t := time.AfterFunc(time.Hour, k.suspect)
	t.Stop()
	return &stallTimer{t: t}
}

func (s *stallTimer) arm() {
	if s != nil {
		s.t.Reset(stallCheckAfter)
	}
}

func (s *stallTimer) disarm() {
	if s != nil {
		s.t.Stop()
	}
}

// newNodeCheck checks nc's node. servers and opts are what nc was connected
// with: a probe of another node connects as the client did (its credentials,
// TLS, dialer).
func newNodeCheck(nc *nats.Conn, log *slog.Logger, watch *connWatch, servers string, opts []nats.Option) *nodeCheck {
	var given []string
	for _, s := range strings.Split(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			given = append(given, s)
		}
	}
	return &nodeCheck{nc: nc, log: log, watch: watch, given: given, dial: opts, stop: make(chan struct{}), connSince: time.Now()}
}

// suspect checks the node in the background: at once, or when the check running
// ends or nodeCheckEvery has passed since the last one began. Safe on nil.
func (k *nodeCheck) suspect() {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	if k.running || time.Since(k.last) < nodeCheckEvery {
		k.pending = true
		return
	}
	k.startLocked()
}

// startLocked runs a check. Called with mu held.
func (k *nodeCheck) startLocked() {
	k.running, k.last, k.pending = true, time.Now(), false
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.check()
		k.mu.Lock()
		defer k.mu.Unlock()
		k.running = false
		if !k.pending || k.closed {
			return
		}
		// A request stalled while this check ran, or soon after the last: check
		// again once nodeCheckEvery has passed.
		wait := time.Until(k.last.Add(nodeCheckEvery))
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			select {
			case <-time.After(wait):
			case <-k.stop:
				return
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			if !k.closed && !k.running {
				k.startLocked()
			}
		}()
	}()
}

// close stops the checks and waits for one running. Safe on nil and more than
// once.
func (k *nodeCheck) close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	if !k.closed {
		k.closed = true
		close(k.stop)
	}
	k.mu.Unlock()
	k.wg.Wait()
}

func (k *nodeCheck) check() {
	url := k.nc.ConnectedUrl()
	if url == "" || !k.nc.IsConnected() {
		return // reconnecting already
	}
	alive, other := k.alive(url)
	if alive {
		k.log.Debug("the qxd node answered a check after a request had waited; staying", "node", k.nc.ConnectedServerName())
		return
	}
	if k.nc.ConnectedUrl() != url || !k.nc.IsConnected() {
		return
	}
	if !k.watch.leave(k.nc, url) {
		k.log.Info("the qxd node sends nothing, not even an answer to a ping, but no other node is worth moving to; staying",
			"node", k.nc.ConnectedServerName())
		return
	}
	if other != "" {
		k.log.Info("the qxd node sends nothing, not even an answer to a ping, while another node answered at once; moving to another", "node", k.nc.ConnectedServerName())
	} else {
		k.log.Info("the qxd node sends nothing, not even an answer to a ping; moving to another", "node", k.nc.ConnectedServerName())
	}
	if err := k.nc.ForceReconnect(); err != nil {
		k.log.Debug("move to another node failed", "err", err)
	}
}

// alive pings the node and reports whether anything came from it within the
// check's wait (see wait): the PONG, or any message (a busy node answers the
// ping late but goes on sending what it answered before it). When the node has
// sent nothing for probeAfter, another node of the pool is probed (see probe):
// if it answers and the client's node goes on sending nothing for
// silenceRoundTrips times the probe's round trip (at least silenceFloor since
// the check began), the node is found silent at once, without waiting out the
// rest of the check; other names the node that answered then.
func (k *nodeCheck) alive(current string) (alive bool, other string) {
	inBefore := k.nc.Stats().InMsgs
	wait, learned := k.wait()
	pong := make(chan error, 1)
	began := time.Now()
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		// The PONG is waited for longer than the check, to learn how slow the
		// node is (a move ends the wait).
		err := k.nc.FlushTimeout(maxCheckWait)
		if err == nil {
			k.answered(time.Since(began))
		}
		pong <- err
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(checkTick)
	defer tick.Stop()
	sent := func() bool { return k.nc.Stats().InMsgs > inBefore }
	var (
		probing  bool
		probed   chan probeResult
		silentTo time.Time // set when another node answered: silent until then means gone
	)
	for {
		select {
		case err := <-pong:
			// A ping that could not be sent (the connection is closing or
			// reconnecting) decides nothing.
			return err == nil || !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded), ""
		case <-timer.C:
			return sent(), ""
		case <-k.stop:
			return true, ""
		case r := <-probed:
			probed = nil
			if r.err != nil {
				k.log.Debug("probe of another node failed; the check waits for its node as long as it would alone", "err", r.err)
				continue
			}
			silentTo = began.Add(max(silenceFloor, silenceRoundTrips*r.took, learned))
			other = r.server
		case now := <-tick.C:
			if sent() {
				return true, ""
			}
			if !silentTo.IsZero() && !now.Before(silentTo) {
				return false, other
			}
			if !probing && now.Sub(began) >= probeAfter {
				// A node whose answers were slow lately is waited for as
				// long as they taught: no probe can shorten that.
				probing = true
				if max(silenceFloor, learned) >= wait-checkTick {
					continue
				}
				if target := k.probeTarget(current); target != "" {
					probed = make(chan probeResult, 1)
					k.wg.Add(1)
					go func() {
						defer k.wg.Done()
						probed <- k.probe(target, wait-now.Sub(began))
					}()
				}
			}
		}
	}
}

const (
	// checkTick is how often a check looks whether its node sent anything.
	checkTick = 20 * time.Millisecond
	// probeAfter is how long a check waits for anything from its node before it
	// probes another: a loaded node most often sends something by then (its
	// answers come late but they come), so that few checks cost a connection.
	probeAfter = 100 * time.Millisecond
	// A node that sent nothing since the check began (and nothing to what
	// stalled before that, stallCheckAfter), while another node answered a new
	// connection's handshake and ping, is silent when that has lasted
	// silenceRoundTrips times the probe's round trip, and silenceFloor at least.
	// A machine so busy that the probe took long makes the wait long too.
	silenceRoundTrips = 3
	silenceFloor      = 450 * time.Millisecond
)

// probeResult is what a probe of another node found: took is the time from
// dialing to its PONG.
type probeResult struct {
	server string
	took   time.Duration
	err    error
}

// probeTarget is the server the probe of a check asks: the first of the pool
// (the servers given, then those discovered) on a host other than the
// connection's and not left or told to leave lately (a node the client left as
// silent may be silent still), or when every other one was, the one left
// longest ago (most often back by then: a client that moved off each node in
// turn, over a cut, a restart and a pause, would otherwise probe none and wait
// out the whole check; one still silent fails the probe, and the check waits as
// long as it would without one). With the user info of the URL given or
// connected to when its own has none. "" when the pool holds no other server.
func (k *nodeCheck) probeTarget(current string) string {
	cur, err := url.Parse(current)
	if err != nil {
		return ""
	}
	now := time.Now()
	var oldest string
	var oldestAt time.Time
	for _, s := range append(append([]string(nil), k.given...), k.nc.Servers()...) {
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == cur.Host {
			continue
		}
		if u.User == nil {
			u.User = cur.User
		}
		at := k.watch.toldLately(u.Host, now)
		if at.IsZero() {
			return u.String()
		}
		if oldest == "" || at.Before(oldestAt) {
			oldest, oldestAt = u.String(), at
		}
	}
	return oldest
}

// probe connects to server as the client did, pings it, and closes the
// connection; all within wait.
func (k *nodeCheck) probe(server string, wait time.Duration) probeResult {
	r := probeResult{server: server}
	if wait <= 0 {
		r.err = context.DeadlineExceeded
		return r
	}
	began := time.Now()
	opts := append(append([]nats.Option(nil), k.dial...),
		nats.Name(probeName), nats.Timeout(wait), nats.NoReconnect(), nats.RetryOnFailedConnect(false),
		nats.DontRandomize(), nats.PingInterval(time.Hour),
		nats.DisconnectErrHandler(nil), nats.ReconnectHandler(nil), nats.ReconnectErrHandler(nil),
		nats.ConnectHandler(nil), nats.ClosedHandler(nil), nats.DiscoveredServersHandler(nil),
		nats.LameDuckModeHandler(nil), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	nc, err := nats.Connect(server, opts...)
	if err != nil {
		r.err = err
		return r
	}
	defer nc.Close()
	if err := nc.FlushTimeout(wait - time.Since(began)); err != nil {
		r.err = err
		return r
	}
	r.took = time.Since(began)
	return r
}

// probeName is the NATS client name of a check's probe connections.
const probeName = "qxd node check"
