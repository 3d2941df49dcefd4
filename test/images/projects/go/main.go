package main

import (
	"fmt"
	"sync"
)

// ParallelSum adds 0..n-1 in goroutines.
func ParallelSum(workers, n int) int {
	var wg sync.WaitGroup
	parts := make(chan int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := 0
			for i := w; i < n; i += workers {
				s += i
			}
			parts <- s
		}(w)
	}
	wg.Wait()
	close(parts)
	total := 0
	for p := range parts {
		total += p
	}
	return total
}

func main() { fmt.Println("sum", ParallelSum(4, 1000)) }
