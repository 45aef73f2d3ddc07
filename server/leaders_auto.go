package server

import "context"

func (n *Node) autoRebalance(ctx context.Context) {}
