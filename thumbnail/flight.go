package thumbnail

import "sync"

// flights coalesces concurrent renders of the same key: the first request
// (the leader) renders, later ones wait for its result. Unlike a response
// cache this also covers the window before the first render finishes.
type flights struct {
	mu     sync.Mutex
	m      map[string]*call
	onJoin func(key string) // test hook, called under mu when a request joins a flight
}

type call struct {
	done chan struct{}
	e    *entry
	err  error
}

// join returns the call for key and whether the caller leads it.
func (f *flights) join(key string) (*call, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.m[key]; ok {
		if f.onJoin != nil {
			f.onJoin(key)
		}
		return c, false
	}
	if f.m == nil {
		f.m = make(map[string]*call)
	}
	c := &call{done: make(chan struct{})}
	f.m[key] = c
	return c, true
}

// done publishes the leader's result to the followers.
func (f *flights) done(key string, c *call) {
	f.mu.Lock()
	delete(f.m, key)
	f.mu.Unlock()
	close(c.done)
}
