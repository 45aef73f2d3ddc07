package qxdtest

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeLoopbackAddrClaimsAcrossProcesses: a port FreeLoopbackAddr handed out
// is claimed by a lock another process cannot take (a second open file
// description is refused as another process's would be), and free again once
// the claim's file is closed (as when the process ends).
func TestFreeLoopbackAddrClaimsAcrossProcesses(t *testing.T) {
	addr := FreeAddr(t)
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	handedOut.Lock()
	claim := handedOut.ports[port]
	handedOut.Unlock()
	if claim == nil {
		t.Fatalf("port %d handed out without a claim", port)
	}
	if f, ok := claimPort(port); ok {
		f.Close()
		t.Fatalf("port %d claimed again while this process holds it", port)
	}
	claim.Close()
	f, ok := claimPort(port)
	if !ok || f == nil {
		t.Fatalf("port %d not claimable after its claim was released", port)
	}
	handedOut.Lock()
	handedOut.ports[port] = f
	handedOut.Unlock()
}
