//go:build race

package kafka_test

// raceDetector: sync.Pool drops a quarter of what it is given under the race
// detector, so the pool's reuse is bounded more loosely there.
const raceDetector = true
