package syncer

// Flush writes the changes file now, as Run does when it returns.
func Flush(s *Syncer) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	s.flush(true)
}
