package bot

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestOrderKeepsEntryOrderPerKey: whatever the interleaving, work entered
// for one key runs in the order it was entered and never two at once,
// while keys run in parallel; every line is gone afterwards.
func TestOrderKeepsEntryOrderPerKey(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var o order
		const keys, items = 5, 200
		var mu sync.Mutex
		ran := map[string][]int{}
		running := map[string]int{}
		var wg sync.WaitGroup
		for i := range items {
			key := fmt.Sprintf("k%d", rng.IntN(keys))
			tk := o.enter(key) // entry order is call order, here i
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-tk.ready
				mu.Lock()
				running[key]++
				if running[key] > 1 {
					t.Errorf("seed %d: two items of %s at once", seed, key)
				}
				ran[key] = append(ran[key], i)
				mu.Unlock()
				mu.Lock()
				running[key]--
				mu.Unlock()
				tk.leave()
			}()
		}
		wg.Wait()
		for k, seq := range ran {
			for j := 1; j < len(seq); j++ {
				if seq[j] < seq[j-1] {
					t.Fatalf("seed %d: %s ran %v, out of entry order", seed, k, seq)
				}
			}
		}
		if len(o.lines) != 0 {
			t.Errorf("seed %d: %d lines left behind", seed, len(o.lines))
		}
	}
}
