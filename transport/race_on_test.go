//go:build race

package transport_test

// raceEnabled: the race detector's instrumentation makes every frame
// larger, so stack sizes say nothing about a normal build.
const raceEnabled = true
