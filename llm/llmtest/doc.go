// Package llmtest is llmkit's test kit: a scripted fake llm.Client, the
// conformance suite every adapter and decorator runs, and a Recorder that
// keeps the events a decorator reports.
//
// The Fake plays a script of Steps (latency, each error kind, hangs until
// the context is done, streams of N chunks, streams cut after k chunks,
// panics) and records what it saw: calls, requests, peak concurrency. Its
// waits use timers, so tests that run it inside testing/synctest take no
// real time.
//
// Run checks the llm.Client contract (answers, concurrency, cancellation,
// streams, error kinds); with Retrying, for clients that retry, that the
// error kinds come back once retries are spent and a retried call answers:
//
//	func TestConformance(t *testing.T) {
//		llmtest.Run(t, func(t *testing.T, upstream llm.Client) llm.Client {
//			return mymiddleware.New()(upstream)
//		})
//	}
//
// Recorder is an llm.Observer, safe for concurrent use, that keeps every
// event it hears; a test gives it to the decorator under test (or puts it
// on the call's context with llm.WithObserver) and checks Events, Count,
// Counts, Sources or Errors afterwards.
package llmtest
