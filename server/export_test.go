package server

import "context"

// HandOffVia exposes handOffVia to the tests: it asks node leader to hand the
// leadership of stream off, preferring node prefer.
func (n *Node) HandOffVia(ctx context.Context, leader, stream, prefer string) error {
	return n.handOffVia(ctx, leader, stream, prefer)
}
