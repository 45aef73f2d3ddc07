//go:build !race

package server_test

// raceDetector: the race detector slows everything several times, so timing
// bounds hold for the other builds only.
const raceDetector = false
