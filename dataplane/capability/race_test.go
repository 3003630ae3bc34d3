//go:build race

package capability

// raceEnabled: sync.Pool drops items at random under the race detector.
const raceEnabled = true
