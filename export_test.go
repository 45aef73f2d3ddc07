package qxd

// Test hooks for the conformance suite (package qxd_test).

// SetDeliveryHook calls f with every batch of records Poll returns, at the moment of
// delivery, with the member id and generation they were delivered under.
func SetDeliveryHook(c *Consumer, f func(member string, generation int32, recs []Record)) {
	c.mu.Lock()
	c.testDeliveryHook = f
	c.mu.Unlock()
}

// PauseHeartbeats cuts a group member off from its coordinator (no heartbeats, no
// rejoin) while it keeps polling: a member that stalled or was cut off without
// noticing.
func PauseHeartbeats(c *Consumer) {
	c.mu.Lock()
	if c.member != nil {
		c.member.testPauseHeartbeats = true
	}
	c.mu.Unlock()
}

// FetchedChunks returns how many decoded batches wait for Poll.
func FetchedChunks(c *Consumer) int { return len(c.out) }
