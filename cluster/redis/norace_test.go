//go:build !race

package redis_test

// raceDetector: see race_test.go.
const raceDetector = false
