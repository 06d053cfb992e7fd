package client

import (
	"context"
	"time"
)

// SetSleep replaces how Run waits, so that tests drive Run with a fake
// clock: f is called with the delay Run wants to wait.
func SetSleep(c *Client, f func(ctx context.Context, d time.Duration) error) { c.sleep = f }

// Waiters returns the number of callers waiting for the request in
// progress (0 when none is).
func Waiters(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flight == nil {
		return 0
	}
	return c.flight.waiters
}
