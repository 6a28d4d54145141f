package identity

// CachedCredentials returns the number of entries in s's DigestHA1 cache,
// for tests of its bound (-1 when the cache is off).
func CachedCredentials(s *Service) int {
	if s.creds == nil {
		return -1
	}
	return s.creds.len()
}
