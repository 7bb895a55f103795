//go:build race

package redis_test

// raceDetector: the race detector slows the node down about five times;
// the tests that size their load by it keep to a few seconds.
const raceDetector = true
