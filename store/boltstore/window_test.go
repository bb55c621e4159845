package boltstore

// SetCaseScanWindow sets how many cases one filtered Cases call looks at,
// for the external tests, until the returned func restores it.
func SetCaseScanWindow(n int) (restore func()) {
	old := caseScanWindow
	caseScanWindow = n
	return func() { caseScanWindow = old }
}
