package server

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// peerRoutes returns the routes to the peers in cfg, leaving out the peers that are
// this node's own cluster address (host:port as listened on).
//
// A peer list may name the node itself (docs say so: the same list on every node).
// NATS ignores a route to itself once connected, but it counts every configured route
// when it sizes the JetStream meta group of a brand-new cluster, and a brand-new meta
// group elects its first leader only once every node of that size has voted: with
// itself counted, a new three-node cluster would wait for all three nodes. Without
// it, the first start needs all nodes but one (two of three).
func peerRoutes(ctx context.Context, peers []string, host, port string) (routes []*url.URL, self []string) {
	local := localAddrs()
	for _, p := range peers {
		u, err := url.Parse(p)
		if err != nil {
			continue // Validate refused it already
		}
		if isOwnAddr(ctx, u, host, port, local) {
			self = append(self, p)
			continue
		}
		routes = append(routes, u)
	}
	return routes, self
}

// isOwnAddr reports whether route u reaches this node's cluster listener on
// host:port: the same port, and a host that is the listen host or resolves to an
// address of this machine the listener takes (any address for 0.0.0.0 or ::).
// A host that does not resolve (yet) is not this node.
func isOwnAddr(ctx context.Context, u *url.URL, host, port string, local []net.IP) bool {
	if u.Port() != port || port == "" || port == "0" {
		return false
	}
	if u.Hostname() == host {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIP(rctx, "ip", u.Hostname())
	if err != nil {
		return false
	}
	listenIP := net.ParseIP(host)
	wildcard := host == "" || listenIP != nil && listenIP.IsUnspecified()
	for _, ip := range ips {
		switch {
		case listenIP != nil && !wildcard:
			if ip.Equal(listenIP) {
				return true
			}
		case wildcard:
			if slices.ContainsFunc(local, ip.Equal) {
				return true
			}
		default: // the listen host is a name: compare what both resolve to
			lips, err := net.DefaultResolver.LookupIP(rctx, "ip", host)
			if err == nil && slices.ContainsFunc(lips, ip.Equal) {
				return true
			}
		}
	}
	return false
}

// localAddrs lists the IP addresses of this machine's interfaces.
func localAddrs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out
}

// portString is the port of a listen address as a string, "" if it has none.
func portString(p int) string {
	if p <= 0 {
		return ""
	}
	return strconv.Itoa(p)
}
