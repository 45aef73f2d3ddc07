//go:build linux

package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"os"
	"strconv"
)

// routeRetransmits returns those of remotes ("ip:port" of a route's peer end)
// whose established connection from this process's network namespace has data
// the kernel retransmitted and the peer has not acknowledged since: the
// retransmission timer fired at least once without an acknowledgement
// (icsk_retransmits, the "retrnsmt" column of /proc/net/tcp, which the kernel
// clears when an acknowledgement of new data comes). Nil when the tables
// cannot be read.
func routeRetransmits(remotes map[string]bool) map[string]bool {
	if len(remotes) == 0 {
		return nil
	}
	var out map[string]bool
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for addr := range parseRetransmitting(b) {
			if remotes[addr] {
				if out == nil {
					out = map[string]bool{}
				}
				out[addr] = true
			}
		}
	}
	return out
}

// parseRetransmitting returns the remote "ip:port" of each established
// connection of a /proc/net/tcp or tcp6 table with a retransmission count
// above zero and unacknowledged data.
func parseRetransmitting(table []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Buffer(make([]byte, 0, 512), 4096)
	for first := true; sc.Scan(); first = false {
		if first {
			continue // the header
		}
		// sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt ...
		f := bytes.Fields(sc.Bytes())
		if len(f) < 7 || string(f[3]) != "01" { // TCP_ESTABLISHED
			continue
		}
		tx, _, ok := bytes.Cut(f[4], []byte(":"))
		if !ok {
			continue
		}
		unacked, err1 := strconv.ParseUint(string(tx), 16, 32)
		retrans, err2 := strconv.ParseUint(string(f[6]), 16, 32)
		if err1 != nil || err2 != nil || unacked == 0 || retrans == 0 {
			continue
		}
		if addr, ok := procTCPAddr(f[2]); ok {
			out[addr] = true
		}
	}
	return out
}

// procTCPAddr turns a /proc/net/tcp address ("0100007F:1F90": the address's
// 32-bit words in hex as the machine stores them, the port in hex) into
// "ip:port".
func procTCPAddr(s []byte) (string, bool) {
	ipHex, portHex, ok := bytes.Cut(s, []byte(":"))
	if !ok || (len(ipHex) != 8 && len(ipHex) != 32) {
		return "", false
	}
	raw := make([]byte, len(ipHex)/2)
	if _, err := hex.Decode(raw, ipHex); err != nil {
		return "", false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(string(portHex), 16, 16)
	if err != nil {
		return "", false
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10)), true
}
