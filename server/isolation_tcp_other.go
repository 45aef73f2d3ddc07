//go:build !linux

package server

// routeRetransmits has no view of the kernel's connections outside Linux: the
// probes alone decide whether the node is cut off.
func routeRetransmits(map[string]bool) map[string]bool { return nil }
