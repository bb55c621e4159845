package dialogs

import "testing"

// TestStepTablesPartitionSteps checks how the flows' step tables fit
// together: every Step but StepNone is declared by exactly one table, and
// each declaration can be asked and answered. The tables are merged into
// one map, so a Step declared twice would otherwise be overwritten without
// a word by whichever table is merged last, and a forgotten table would
// leave its questions unanswerable.
func TestStepTablesPartitionSteps(t *testing.T) {
	owner := map[Step]int{}
	for i, table := range stepTables() {
		for step, spec := range table {
			if j, dup := owner[step]; dup {
				t.Errorf("step %q is declared by stepTables()[%d] and [%d]", step, j, i)
			}
			owner[step] = i
			if spec.prompt == "" {
				t.Errorf("step %q has no prompt", step)
			}
			if spec.choose == nil && spec.free == nil {
				t.Errorf("step %q takes no answer (neither choose nor free)", step)
			}
			if spec.options != nil && spec.choose == nil {
				t.Errorf("step %q offers choices but takes none (options without choose)", step)
			}
			if spec.skippable && spec.free == nil {
				t.Errorf("step %q offers Skip but has no free to take it", step)
			}
		}
	}
	known := map[Step]bool{}
	for _, step := range AllSteps {
		known[step] = true
		if _, ok := owner[step]; ok != (step != StepNone) {
			t.Errorf("step %q: declared by a table = %v, want %v", step, ok, step != StepNone)
		}
	}
	for step := range owner {
		if !known[step] {
			t.Errorf("step %q is declared but missing from AllSteps", step)
		}
	}
	if got, want := len(steps()), len(owner); got != want {
		t.Errorf("steps() has %d questions, the tables declare %d", got, want)
	}
}
