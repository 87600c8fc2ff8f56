// Package bench holds the benchmarks of llmkit's whole recommended stack,
// one call through every decorator at once, and the allocation budgets
// that pin it. It has no code of its own.
//
//	go test -run '^$' -bench . -benchmem -cpu 1,2 ./bench/
package bench
