package offsets

// Lag is highWatermark - committed, never negative; with no commit (committed < 0) the
// lag is highWatermark - logStart.
func Lag(logStart, highWatermark, committed int64) int64 {
	from := committed
	if committed < 0 {
		from = logStart
	}
	return max(highWatermark-from, 0)
}
