// Package clock holds the one cheap clock the per-call paths share.
package clock

import "time"

// epoch anchors Mono: time.Since of an instant with a monotonic reading
// reads only the monotonic clock (one clock read where time.Now takes
// two), and follows testing/synctest's fake clock.
var epoch = time.Now()

// Mono returns a monotonic reading. Only differences between readings
// mean anything: end - start is a duration.
func Mono() time.Duration { return time.Since(epoch) }
